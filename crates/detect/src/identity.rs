//! The content identity of an executable: its ELF build-id, which a renamed or byte-for-byte
//! copied binary keeps (device+inode and the name do not survive a copy).

use std::path::Path;

/// The GNU build-id of the ELF file `file` (hex), from its `PT_NOTE` segments. Reads only the
/// file header, the program headers and the note segments (a few KiB), never the sections or
/// the symbol table. None for a script, a non-ELF file or an ELF without a build-id note.
pub fn build_id(file: &std::fs::File) -> Option<String> {
    let data = object::ReadCache::new(file);
    let id = match object::FileKind::parse(&data).ok()? {
        object::FileKind::Elf64 => {
            note_build_id::<object::elf::FileHeader64<object::Endianness>>(&data)?
        }
        object::FileKind::Elf32 => {
            note_build_id::<object::elf::FileHeader32<object::Endianness>>(&data)?
        }
        _ => return None,
    };
    // A build-id is 20 bytes (SHA-1) or 16 (MD5/UUID); anything longer is not one we trust.
    if id.is_empty() || id.len() > 64 {
        return None;
    }
    Some(id.iter().map(|b| format!("{b:02x}")).collect())
}

/// The descriptor of the first `NT_GNU_BUILD_ID` note named "GNU": in a `PT_NOTE` segment, or
/// else in a note section (Go's linker leaves the GNU note outside its one `PT_NOTE` segment).
/// (`object::File::parse` would also read the whole symbol table: 9 ms of each engine's start
/// on our hosts, for the interpreters' build-ids alone.)
fn note_build_id<'a, Elf>(data: &'a object::ReadCache<&std::fs::File>) -> Option<Vec<u8>>
where
    Elf: object::read::elf::FileHeader<Endian = object::Endianness>,
{
    use object::read::elf::{NoteIterator, ProgramHeader, SectionHeader};
    let header = Elf::parse(data).ok()?;
    let endian = header.endian().ok()?;
    let find = |notes: Option<NoteIterator<'a, Elf>>| -> Option<Vec<u8>> {
        let mut notes = notes?;
        while let Ok(Some(note)) = notes.next() {
            if note.name() == b"GNU" && note.n_type(endian) == object::elf::NT_GNU_BUILD_ID {
                return Some(note.desc().to_vec());
            }
        }
        None
    };
    for ph in header.program_headers(endian, data).ok()? {
        if let Some(id) = find(ph.notes(endian, data).ok().flatten()) {
            return Some(id);
        }
    }
    let sections = header.sections(endian, data).ok()?;
    sections
        .iter()
        .find_map(|sh| find(sh.notes(endian, data).ok().flatten()))
}

/// [`build_id`] of the file at `path`.
pub fn build_id_of(path: &Path) -> Option<String> {
    build_id(&std::fs::File::open(path).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The note-segment reader gives what the full ELF parse gives, on the host's binaries.
    #[test]
    fn the_build_id_from_the_notes_matches_the_full_parse() {
        use object::Object;
        let mut compared = 0;
        for dir in ["/usr/bin", "/usr/sbin", "/usr/lib/x86_64-linux-gnu"] {
            let Ok(rd) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut entries: Vec<_> = rd.flatten().map(|e| e.path()).collect();
            entries.sort();
            for p in entries.iter().filter(|p| p.is_file()).take(150) {
                let Ok(f) = std::fs::File::open(p) else {
                    continue;
                };
                let cache = object::ReadCache::new(&f);
                let full = object::File::parse(&cache)
                    .ok()
                    .and_then(|e| e.build_id().ok().flatten().map(|b| b.to_vec()))
                    .filter(|b| !b.is_empty() && b.len() <= 64)
                    .map(|b| b.iter().map(|x| format!("{x:02x}")).collect::<String>());
                assert_eq!(build_id(&f), full, "{}", p.display());
                compared += usize::from(full.is_some());
            }
        }
        assert!(
            compared >= 20,
            "only {compared} binaries with a build-id compared"
        );
    }

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
