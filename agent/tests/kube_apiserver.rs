//! The kube-apiserver harness against the real server: pods on a node with no
//! kubelet, a service account's token under RBAC, an outage, and the owners
//! of a CronJob's pod. Each test starts its own etcd and kube-apiserver.

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::{
    api::{
        batch::v1::Job,
        core::v1::{Namespace, Pod, Secret, ServiceAccount},
        rbac::v1::{ClusterRole, ClusterRoleBinding},
    },
    apimachinery::pkg::apis::meta::v1::OwnerReference,
};
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, ObjectMeta, PostParams},
};
use serde_json::json;
use support::{
    apiserver::{ApiServer, client_from_kubeconfig},
    unique_hex,
};

async fn create_namespace(client: &Client) -> String {
    let name = format!("test-{}", unique_hex(8));
    let namespace: Namespace =
        serde_json::from_value(json!({"metadata": {"name": name}})).expect("a namespace");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .expect("create a namespace");
    name
}

/// A pod bound to `node`, with one container `app`, owned by `owner`.
fn pod(name: &str, node: &str, owner: Option<OwnerReference>) -> Pod {
    let mut pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "restartPolicy": "Never",
            "containers": [{"name": "app", "image": "registry.invalid/app:1"}],
        },
    }))
    .expect("a pod");
    pod.metadata.owner_references = owner.map(|owner| vec![owner]);
    pod
}

fn container_id() -> String {
    format!("containerd://{}", unique_hex(64))
}

async fn pod_names_on(client: &Client, node: &str) -> Vec<String> {
    Api::<Pod>::all(client.clone())
        .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
        .await
        .expect("list the node's pods")
        .items
        .into_iter()
        .filter_map(|pod| pod.metadata.name)
        .collect()
}

#[tokio::test]
async fn a_node_s_pods_are_listed_by_a_service_account_that_may_not_read_secrets_across_an_outage()
{
    let Some(mut server) = ApiServer::start().await else {
        return;
    };
    let admin = server.admin_client().await;
    let namespace = create_namespace(&admin).await;
    let node = format!("node-{}", unique_hex(8));
    let pods: Api<Pod> = Api::namespaced(admin.clone(), &namespace);
    pods.create(&PostParams::default(), &pod("web", &node, None))
        .await
        .expect("create a pod on the node");
    pods.create(
        &PostParams::default(),
        &pod("elsewhere", "other-node", None),
    )
    .await
    .expect("create a pod on another node");
    let id = container_id();
    server
        .mark_pod_running(&namespace, "web", &[("app", &id)])
        .await;

    assert_eq!(pod_names_on(&admin, &node).await, ["web"]);
    let web = pods.get("web").await.expect("get the pod");
    let status = web.status.expect("the pod's status");
    assert_eq!(status.phase.as_deref(), Some("Running"));
    let statuses = status.container_statuses.expect("container statuses");
    assert_eq!(statuses[0].container_id.as_deref(), Some(id.as_str()));

    // A service account allowed to read pods and nothing else, through a
    // kubeconfig as an agent process would get it.
    let account = "guardrails";
    let service_account: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": account}})).expect("an account");
    Api::<ServiceAccount>::namespaced(admin.clone(), &namespace)
        .create(&PostParams::default(), &service_account)
        .await
        .expect("create a service account");
    let role = format!("{namespace}-pod-reader");
    let cluster_role: ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": role},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}],
    }))
    .expect("a cluster role");
    Api::<ClusterRole>::all(admin.clone())
        .create(&PostParams::default(), &cluster_role)
        .await
        .expect("create a cluster role");
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": role},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
    }))
    .expect("a cluster role binding");
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(&PostParams::default(), &binding)
        .await
        .expect("create a cluster role binding");

    let token = server.service_account_token(&namespace, account).await;
    let kubeconfig = server.kubeconfig(&token);
    let agent = client_from_kubeconfig(&kubeconfig).await;
    // RBAC takes in a new binding within moments, from its informers.
    let deadline = Instant::now() + Duration::from_secs(10);
    let listed = loop {
        match Api::<Pod>::all(agent.clone())
            .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
            .await
        {
            Ok(list) => break list,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("the service account cannot list pods: {e}"),
        }
    };
    assert_eq!(listed.items.len(), 1);
    match Api::<Secret>::namespaced(agent.clone(), &namespace)
        .list(&ListParams::default())
        .await
    {
        Err(kube::Error::Api(status)) => assert!(status.is_forbidden(), "{status:?}"),
        other => panic!("listing secrets should be forbidden: {other:?}"),
    }

    // An outage: the same client fails, then works once the server is back,
    // with the data kept in etcd.
    server.stop_apiserver();
    assert!(
        Api::<Pod>::all(agent.clone())
            .list(&ListParams::default())
            .await
            .is_err(),
        "a list with the server down should fail"
    );
    server.start_apiserver_again().await;
    assert_eq!(pod_names_on(&agent, &node).await, ["web"]);

    // Without a kubelet, a pod goes at once only with grace period 0.
    server.delete_pod(&namespace, "web").await;
    assert!(
        pods.get_opt("web").await.expect("get the pod").is_none(),
        "the pod is gone"
    );
}

#[tokio::test]
async fn a_batch_v1beta1_cronjob_owns_a_job_that_owns_a_pod() {
    let Some(server) = ApiServer::start().await else {
        return;
    };
    let admin = server.admin_client().await;
    let namespace = create_namespace(&admin).await;

    // k8s-openapi describes only batch/v1 CronJobs, which 1.20 does not serve.
    let cronjob_type = ApiResource::from_gvk(&GroupVersionKind::gvk("batch", "v1beta1", "CronJob"));
    let cronjobs: Api<DynamicObject> =
        Api::namespaced_with(admin.clone(), &namespace, &cronjob_type);
    let template = json!({"spec": {
        "restartPolicy": "Never",
        "containers": [{"name": "app", "image": "registry.invalid/app:1"}],
    }});
    let mut cronjob = DynamicObject::new("nightly", &cronjob_type).data(json!({
        "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": template}}},
    }));
    cronjob.metadata.namespace = Some(namespace.clone());
    let cronjob = cronjobs
        .create(&PostParams::default(), &cronjob)
        .await
        .expect("create a batch/v1beta1 CronJob");
    let owned_by = |api_version: &str, kind: &str, meta: &ObjectMeta| OwnerReference {
        api_version: api_version.to_owned(),
        kind: kind.to_owned(),
        name: meta.name.clone().expect("a name"),
        uid: meta.uid.clone().expect("a uid"),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };

    let mut job: Job = serde_json::from_value(json!({
        "metadata": {"name": "nightly-27000000"},
        "spec": {"template": template},
    }))
    .expect("a job");
    job.metadata.owner_references = Some(vec![owned_by(
        "batch/v1beta1",
        "CronJob",
        &cronjob.metadata,
    )]);
    let jobs: Api<Job> = Api::namespaced(admin.clone(), &namespace);
    let job = jobs
        .create(&PostParams::default(), &job)
        .await
        .expect("create a job owned by the CronJob");
    let pods: Api<Pod> = Api::namespaced(admin.clone(), &namespace);
    pods.create(
        &PostParams::default(),
        &pod(
            "nightly-27000000-abcde",
            "node-a",
            Some(owned_by("batch/v1", "Job", &job.metadata)),
        ),
    )
    .await
    .expect("create a pod owned by the job");

    // Walk up with metadata-only reads, as the agent does.
    let pod = pods
        .get_metadata("nightly-27000000-abcde")
        .await
        .expect("the pod's metadata");
    let owner = &pod.metadata.owner_references.expect("the pod's owners")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Job", "nightly-27000000")
    );
    let job = jobs
        .get_metadata(&owner.name)
        .await
        .expect("the job's metadata");
    let owner = &job.metadata.owner_references.expect("the job's owners")[0];
    assert_eq!(
        (owner.api_version.as_str(), owner.kind.as_str()),
        ("batch/v1beta1", "CronJob")
    );
    let cronjob = cronjobs
        .get_metadata(&owner.name)
        .await
        .expect("the CronJob's metadata");
    assert_eq!(cronjob.metadata.name.as_deref(), Some("nightly"));
    assert_eq!(cronjob.metadata.uid, Some(owner.uid.clone()));
}
