//! The content identity of an executable: its ELF build-id, which a renamed or byte-for-byte
//! copied binary keeps (device+inode and the name do not survive a copy).

use std::path::Path;

/// The GNU build-id of the ELF file `file` (hex), from its note segments. Reads only the headers
/// and the notes (lazily), never the whole file. None for a script, a non-ELF file or an ELF
/// without a build-id note.
pub fn build_id(file: &std::fs::File) -> Option<String> {
    use object::Object;
    let data = object::ReadCache::new(file);
    let elf = object::File::parse(&data).ok()?;
    let id = elf.build_id().ok()??;
    // A build-id is 20 bytes (SHA-1) or 16 (MD5/UUID); anything longer is not one we trust.
    if id.is_empty() || id.len() > 64 {
        return None;
    }
    Some(id.iter().map(|b| format!("{b:02x}")).collect())
}

/// [`build_id`] of the file at `path`.
pub fn build_id_of(path: &Path) -> Option<String> {
    build_id(&std::fs::File::open(path).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_keeps_the_build_id_and_a_script_has_none() {
        let sh = std::fs::canonicalize("/bin/sh").unwrap();
        let id = build_id_of(&sh).expect("Debian's binaries carry a build-id");
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("ls");
        std::fs::copy(&sh, &copy).unwrap();
        assert_eq!(build_id_of(&copy).as_deref(), Some(id.as_str()));
        let script = dir.path().join("s");
        std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
        assert_eq!(build_id_of(&script), None);
        std::fs::write(&script, b"\x7fELF garbage").unwrap();
        assert_eq!(build_id_of(&script), None);
    }
}
