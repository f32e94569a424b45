//! Linking the kernel functions (kfuncs) that the programs call.
//!
//! aya links no kfunc call, so the object carries each call as a raw
//! instruction whose immediate is a marker (`agent-ebpf/bpf/lib/kfunc.h`);
//! [`link`] replaces every marker with the function's BTF id in the running
//! kernel. A program with a kfunc call has a twin without it, loaded where
//! the kernel lacks the function.

use aya::Btf;
use aya_obj::btf::BtfKind;

/// A kernel function that the programs call, and its marker in the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kfunc {
    /// The function's name in the kernel's BTF.
    pub name: &'static str,
    /// The immediate of its call instructions in the object
    /// (`GR_KFUNC_MARKER_*` in `kfunc.h`).
    pub marker: u32,
}

/// `bpf_rdonly_cast`: reads the saved user registers without a helper call.
pub const RDONLY_CAST: Kfunc = Kfunc {
    name: "bpf_rdonly_cast",
    marker: 0x6b66_7501,
};

/// Every kfunc the sensors object calls.
pub const SENSOR_KFUNCS: &[Kfunc] = &[RDONLY_CAST];

/// BPF_JMP | BPF_CALL.
const CALL: u8 = 0x85;
/// The registers byte of a call to a kernel function: source register
/// BPF_PSEUDO_KFUNC_CALL (2), destination 0.
const PSEUDO_KFUNC_CALL: u8 = 0x20;
/// One BPF instruction.
const INSN_LEN: usize = 8;

/// Why an object's kfunc calls could not be linked.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KfuncError {
    /// The kernel's BTF has no such function (a kernel older than it).
    #[error("the kernel has no kfunc {0}")]
    Missing(&'static str),
    /// The object has no call with this marker: it was built from other
    /// sources than this agent.
    #[error("no call of {0} in the object")]
    NoCall(&'static str),
}

/// A copy of `object` with every call of each of `kfuncs` pointing at the
/// function's id in `btf`, the kernel's BTF.
pub fn link(object: &[u8], kfuncs: &[Kfunc], btf: &Btf) -> Result<Vec<u8>, KfuncError> {
    let mut linked = object.to_vec();
    for kfunc in kfuncs {
        let id = btf
            .id_by_type_name_kind(kfunc.name, BtfKind::Func)
            .map_err(|_| KfuncError::Missing(kfunc.name))?;
        if patch_calls(&mut linked, kfunc.marker, id) == 0 {
            return Err(KfuncError::NoCall(kfunc.name));
        }
    }
    Ok(linked)
}

/// Replaces the immediate of every kfunc call to `marker` with `id`;
/// returns how many it replaced. An ELF object keeps code sections at
/// offsets aligned to their 8-byte instructions, so only aligned positions
/// are looked at.
fn patch_calls(object: &mut [u8], marker: u32, id: u32) -> usize {
    let call = kfunc_call(marker);
    let mut patched = 0;
    for insn in object.chunks_exact_mut(INSN_LEN) {
        if insn == call {
            insn[4..].copy_from_slice(&id.to_le_bytes());
            patched += 1;
        }
    }
    patched
}

/// A call to the kernel function whose BTF id (or marker) is `imm`, as the
/// 8 bytes of a little-endian instruction.
fn kfunc_call(imm: u32) -> [u8; INSN_LEN] {
    let mut insn = [CALL, PSEUDO_KFUNC_CALL, 0, 0, 0, 0, 0, 0];
    insn[4..].copy_from_slice(&imm.to_le_bytes());
    insn
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_aligned_call_with_the_marker_gets_the_id_and_nothing_else_changes() {
        let marker = RDONLY_CAST.marker;
        let mut object = Vec::new();
        object.extend_from_slice(&[0xb7, 0x01, 0, 0, 7, 0, 0, 0]); // r1 = 7
        object.extend_from_slice(&kfunc_call(marker));
        // The same bytes across two instructions are not an instruction.
        object.extend_from_slice(&[0; 4]);
        object.extend_from_slice(&kfunc_call(marker));
        object.extend_from_slice(&[0; 4]);
        object.extend_from_slice(&kfunc_call(marker));
        // A helper call (source register 0) with the same immediate.
        object.extend_from_slice(&[CALL, 0, 0, 0, 1, 0x75, 0x66, 0x6b]);
        let before = object.clone();

        assert_eq!(patch_calls(&mut object, marker, 65_486), 2);
        assert_eq!(&object[8..16], &kfunc_call(65_486));
        assert_eq!(&object[32..40], &kfunc_call(65_486));
        let changed: Vec<usize> = (0..object.len())
            .filter(|&i| object[i] != before[i])
            .collect();
        assert!(
            changed
                .iter()
                .all(|&i| (12..16).contains(&i) || (36..40).contains(&i)),
            "only the two immediates change: {changed:?}"
        );
    }

    #[test]
    fn the_sensors_object_calls_each_kfunc_and_the_kernel_btf_links_them() {
        for kfunc in SENSOR_KFUNCS {
            let mut object = agent_ebpf::SENSORS.to_vec();
            assert!(
                patch_calls(&mut object, kfunc.marker, 1) > 0,
                "{} is called in the sensors object",
                kfunc.name
            );
        }
        // The rest needs the kernel's BTF, which every machine the kernel
        // tests run on has.
        let Ok(btf) = Btf::from_sys_fs() else { return };
        let Ok(id) = btf.id_by_type_name_kind(RDONLY_CAST.name, BtfKind::Func) else {
            assert_eq!(
                link(agent_ebpf::SENSORS, SENSOR_KFUNCS, &btf),
                Err(KfuncError::Missing(RDONLY_CAST.name))
            );
            return;
        };
        let linked = link(agent_ebpf::SENSORS, SENSOR_KFUNCS, &btf).expect("linked");
        let mut again = linked.clone();
        assert_eq!(
            patch_calls(&mut again, RDONLY_CAST.marker, 1),
            0,
            "no marker left"
        );
        assert!(
            linked
                .chunks_exact(INSN_LEN)
                .any(|insn| insn == kfunc_call(id)),
            "calls {} by its id {id}",
            RDONLY_CAST.name
        );
    }

    #[test]
    fn a_kernel_without_the_function_is_told_apart_from_an_object_without_the_call() {
        let empty = Btf::new();
        assert_eq!(
            link(agent_ebpf::SENSORS, SENSOR_KFUNCS, &empty),
            Err(KfuncError::Missing(RDONLY_CAST.name))
        );
        let Ok(btf) = Btf::from_sys_fs() else { return };
        if btf
            .id_by_type_name_kind(RDONLY_CAST.name, BtfKind::Func)
            .is_ok()
        {
            assert_eq!(
                link(&[0; 64], SENSOR_KFUNCS, &btf),
                Err(KfuncError::NoCall(RDONLY_CAST.name))
            );
        }
    }
}
