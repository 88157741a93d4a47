//! TLS libraries: which files to hook, hooking them, and which executables cannot be hooked.
//!
//! - [`system_libraries`]: the system's libssl.so.3 / libgnutls.so.30 (from `ldconfig -p`).
//! - [`mapped_libraries`]: the TLS libraries a process has mapped (`/proc/PID/maps`), each with
//!   its identity (device+inode), so a private copy is hooked too, once per file.
//! - [`Sensor::hook_library`]: uprobes on one library file (every process mapping it; the BPF
//!   side keeps only tracked threads).
//! - [`static_tls`]: ELF inspection of an executable that carries its own TLS (Go's crypto/tls,
//!   rustls, BoringSSL, a static OpenSSL or GnuTLS), which no uprobe on a shared library sees,
//!   unless the executable exports the library's calls (Node.js does): then it is hooked itself.

use crate::stamp::{open_expected, ContentCache};
use crate::{Sensor, SensorError};
use libbpf_rs::UprobeOpts;
use object::{Object, ObjectSymbol};
use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A TLS library proctor can hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsLib {
    OpenSsl,
    GnuTls,
}

impl TlsLib {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsLib::OpenSsl => "openssl",
            TlsLib::GnuTls => "gnutls",
        }
    }

    /// The library a file is, by its name (`libssl.so.3`, `libgnutls.so.30`, ...).
    pub fn of_path(p: &Path) -> Option<TlsLib> {
        let name = p.file_name()?.to_str()?;
        if name.starts_with("libssl.so") {
            Some(TlsLib::OpenSsl)
        } else if name.starts_with("libgnutls.so") {
            Some(TlsLib::GnuTls)
        } else {
            None
        }
    }
}

/// A mapped TLS library of a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedLib {
    pub lib: TlsLib,
    /// A path to the file that works from proctor's mount namespace
    /// (`/proc/PID/root/<path in the process>`).
    pub path: PathBuf,
    /// Identity in the userspace `st_dev` encoding.
    pub dev: u64,
    pub ino: u64,
}

/// The system's OpenSSL 3 and GnuTLS 3 libraries that exist, as the dynamic linker finds them.
pub fn system_libraries() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let listed = std::process::Command::new("ldconfig")
        .arg("-p")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    for want in ["libssl.so.3", "libgnutls.so.30"] {
        // Lines look like "\tlibssl.so.3 (libc6,x86-64) => /lib/x86_64-linux-gnu/libssl.so.3".
        let found = listed.lines().find_map(|l| {
            let l = l.trim();
            let (name, rest) = l.split_once(' ')?;
            // Only the native ABI's copy (not a 32-bit one).
            let native = !cfg!(target_arch = "x86_64") || rest.contains("x86-64");
            (name == want && native)
                .then(|| {
                    rest.rsplit_once("=> ")
                        .map(|(_, p)| PathBuf::from(p.trim()))
                })
                .flatten()
        });
        let fallback = [
            format!("/lib/x86_64-linux-gnu/{want}"),
            format!("/usr/lib/x86_64-linux-gnu/{want}"),
            format!("/usr/lib64/{want}"),
        ]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
        if let Some(p) = found.filter(|p| p.exists()).or(fallback) {
            out.push(p);
        }
    }
    out
}

/// The TLS libraries `pid` has mapped now. Errors when the process is gone.
pub fn mapped_libraries(pid: u32) -> std::io::Result<Vec<MappedLib>> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))?;
    let mut out: Vec<MappedLib> = Vec::new();
    for line in maps.lines() {
        let Some((inside, ino)) = maps_line(line) else {
            continue;
        };
        let Some(lib) = TlsLib::of_path(inside) else {
            continue;
        };
        let path = Path::new(&format!("/proc/{pid}/root"))
            .join(inside.strip_prefix("/").unwrap_or(inside));
        // The identity from the file we would attach to, checked against the mapping's inode,
        // so a file replaced since it was mapped is not taken for it.
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.ino() != ino || out.iter().any(|m| m.dev == meta.dev() && m.ino == ino) {
            continue;
        }
        out.push(MappedLib {
            lib,
            path,
            dev: meta.dev(),
            ino,
        });
    }
    Ok(out)
}

/// The file and inode of one /proc/PID/maps line ("start-end perms offset dev inode path"), for
/// mappings of a file that still exists. The path is the rest of the line after padding (it may
/// hold spaces).
fn maps_line(line: &str) -> Option<(&Path, u64)> {
    let mut rest = line;
    let mut fields = [""; 5];
    for f in fields.iter_mut() {
        rest = rest.trim_start();
        let end = rest.find(' ')?;
        *f = &rest[..end];
        rest = &rest[end..];
    }
    let path = rest.trim_start();
    if !path.starts_with('/') || path.ends_with(" (deleted)") {
        return None; // anonymous, special, or gone: nothing to attach to by path
    }
    Some((Path::new(path), fields[4].parse().ok()?))
}

/// Largest executable inspected for static TLS (bigger ones are read up to this size).
pub const INSPECT_MAX: u64 = 512 << 20;

/// What an executable carries of its own TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExeTls {
    /// None: it uses shared libraries only (or it is not ELF).
    Shared,
    /// A TLS library linked in whose read/write calls the executable exports as dynamic
    /// symbols (Node.js exports OpenSSL's for native addons): uprobes on the executable file
    /// itself see them, by symbol, like on a shared library.
    Exported(TlsLib),
    /// Linked in and not hookable: "go-crypto-tls", "rustls", "boringssl", "static-openssl" or
    /// "static-gnutls".
    Blind(&'static str),
}

/// What TLS an executable carries of its own (see [`ExeTls`]). None when the file could not
/// be inspected: missing,
/// unreadable, or not the expected file: `expect` is the (st_dev, inode) it must have (the path
/// may have been replaced since the exec).
///
/// The file is read, not mapped (the agent may truncate it meanwhile, which would fault a
/// mapping (SIGBUS) but only shortens a read), and read in pieces: the headers and symbol
/// tables lazily, the rest in [`SCAN_CHUNK`] pieces for [`MARKS`], so what proctor holds does
/// not grow with the executable (a whole 7 MB `python3` held at once raised proctor's peak
/// RSS by 20 MB).
pub fn static_tls(path: &Path, expect: Option<(u64, u64)>) -> Option<ExeTls> {
    let (file, _) = open_expected(path, expect)?;
    inspect(file)
}

/// [`static_tls`] of a file already open.
fn inspect(file: std::fs::File) -> Option<ExeTls> {
    use std::io::{Read, Seek};
    // Exported calls first, from the headers and the dynamic symbol table alone: an executable
    // of hundreds of MiB is then hooked before its first TLS call, not after a full read.
    if let Some(lib) = exported_lib(&file) {
        return Some(ExeTls::Exported(lib));
    }
    // From the start again: the lazy reads above moved the file position.
    let mut file = file;
    file.seek(std::io::SeekFrom::Start(0)).ok()?;
    let marks = marks_in((&file).take(INSPECT_MAX)).ok()?;
    Some(elf_tls(&object::ReadCache::new(&file), marks))
}

/// [`static_tls`] answers by the file's [`FileStamp`](crate::stamp::FileStamp): an executable
/// is read once however often it is run (an agent's shell runs `bash` dozens of times a
/// session, each read ~4 ms; Claude Code's 400 MB executable takes ~90 ms), and again only once
/// its content may have changed.
pub struct StaticTlsCache(ContentCache<ExeTls>);

/// At most this many answers are kept (an agent making ever new executables makes the cache
/// start over, not grow).
const STATIC_TLS_KEPT: usize = 4096;

impl Default for StaticTlsCache {
    fn default() -> StaticTlsCache {
        StaticTlsCache(ContentCache::new(STATIC_TLS_KEPT))
    }
}

impl StaticTlsCache {
    pub fn new() -> StaticTlsCache {
        StaticTlsCache::default()
    }

    /// [`static_tls`] of the first of `paths` that is still the expected file (see
    /// [`executed`](crate::stamp::executed)), answered from the cache when the file's stamp is
    /// known (see [`ContentCache::first`] for `at_exec`).
    pub fn first(
        &mut self,
        paths: &[PathBuf],
        expect: Option<(u64, u64)>,
        at_exec: Option<proctor_model::InodeTimes>,
    ) -> Option<ExeTls> {
        self.0.first(paths, expect, at_exec, inspect)
    }

    /// How many answers are kept.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Byte strings that name a TLS library linked into an executable, stripped or not (version
/// strings, source file names of assertion messages, Go's runtime type names), and the names of
/// the symbols [`elf_tls`] looks for: a file without a name's bytes cannot define it, so most
/// executables' symbol tables are never walked.
const MARKS: [&[u8]; 13] = [
    b"crypto/tls.(*Conn)",
    b"rustls",
    b"rustls::conn",
    b"rustls/src",
    b"rustls-",
    b"BoringSSL",
    b"ssl_lib.cc",
    b"handshake_client.cc",
    b"ssl/statem/",
    b"boringssl",
    b"SSL_write",
    b"BORINGSSL_self_test",
    b"gnutls_record_send",
];

/// Bytes read at a time by [`marks_in`].
const SCAN_CHUNK: usize = 1 << 20;

/// Which of [`MARKS`] occur in `r` (bit i: `MARKS[i]`), read to its end a piece at a time; the
/// last bytes of each piece are kept before the next, so a mark across two pieces is found.
///
/// One pass of an Aho-Corasick automaton finds them all (ten `memmem` passes took ~160 ms over
/// Claude Code's 400 MB executable, this ~70 ms). Its leftmost-longest search is the fast one;
/// restarted one byte after each match's start, it finds the longest mark starting at every
/// place, and a mark that is a prefix of one found there ("rustls" of "rustls::conn") is
/// found with it: the same bits as an overlapping search.
fn marks_in(mut r: impl std::io::Read) -> std::io::Result<u16> {
    use aho_corasick::{AhoCorasick, Input, MatchKind};
    use std::io::Read;
    static FINDER: std::sync::LazyLock<Option<AhoCorasick>> = std::sync::LazyLock::new(|| {
        AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(MARKS)
            .ok()
    });
    let Some(ac) = FINDER.as_ref() else {
        return Err(std::io::Error::other(
            "the TLS marks' automaton did not build",
        ));
    };
    // Bit i with the bits of the marks that are prefixes of mark i.
    let with_prefixes = |i: usize| {
        (0..MARKS.len())
            .filter(|&j| MARKS[i].starts_with(MARKS[j]))
            .fold(0u16, |b, j| b | 1 << j)
    };
    let all = (1u16 << MARKS.len()) - 1;
    let keep = MARKS.iter().map(|m| m.len()).max().unwrap_or(1) - 1;
    // Grown as the reads fill it (a 30 kB executable is not given a zeroed MiB: that memset
    // and its page faults were most of inspecting one once the scan itself was fast).
    let mut buf = Vec::new();
    let (mut held, mut found) = (0usize, 0u16);
    loop {
        buf.truncate(held);
        let n = (&mut r).take(SCAN_CHUNK as u64).read_to_end(&mut buf)?;
        if n == 0 {
            return Ok(found);
        }
        let end = held + n;
        let mut at = 0;
        while let Some(m) = ac.find(Input::new(&buf[..end]).span(at..end)) {
            found |= with_prefixes(m.pattern().as_usize());
            at = m.start() + 1;
        }
        if found == all {
            return Ok(found);
        }
        let tail = end.saturating_sub(keep);
        buf.copy_within(tail..end, 0);
        held = end - tail;
    }
}

/// The TLS library whose read and write calls `file` exports, if any.
fn exported_lib(file: &std::fs::File) -> Option<TlsLib> {
    // One pass per library, OpenSSL's first: the one a runtime (Node.js) exports.
    [TlsLib::OpenSsl, TlsLib::GnuTls].into_iter().find(|&lib| {
        let offs = exported_offsets(file, lib);
        let (write, read) = match lib {
            TlsLib::OpenSsl => ("SSL_write", "SSL_read"),
            TlsLib::GnuTls => ("gnutls_record_send", "gnutls_record_recv"),
        };
        offs.contains_key(write) && offs.contains_key(read)
    })
}

/// File offsets of the functions of [`probes`] that `file` exports (defined dynamic symbols),
/// for uprobes by offset. Read lazily: only the ELF headers, program headers and dynamic symbol
/// table are read, never the whole file. The offset of an address is found through the loadable
/// segment holding it (executables and shared objects alike).
fn exported_offsets(file: &std::fs::File, lib: TlsLib) -> HashMap<&'static str, u64> {
    use object::elf::STT_FUNC;
    use object::read::elf::{ElfFile64, ProgramHeader, Sym};
    use object::{Object, ObjectSection};
    let mut out = HashMap::new();
    let cache = object::ReadCache::new(file);
    let Ok(elf) = ElfFile64::<object::Endianness, _>::parse(&cache) else {
        return out;
    };
    let endian = elf.endian();
    // The symbol and string tables are read whole, once (a binary exporting 75k symbols would
    // otherwise cost a read per name).
    let Some(strs) = elf.section_by_name(".dynstr").and_then(|s| s.data().ok()) else {
        return out;
    };
    let segs: Vec<(u64, u64, u64)> = elf
        .elf_program_headers()
        .iter()
        .filter(|p| p.p_type(endian) == object::elf::PT_LOAD)
        .map(|p| (p.p_vaddr(endian), p.p_filesz(endian), p.p_offset(endian)))
        .collect();
    for sym in elf.elf_dynamic_symbol_table().symbols() {
        if sym.st_type() != STT_FUNC || sym.st_shndx(endian) == object::elf::SHN_UNDEF {
            continue;
        }
        let name = strs
            .get(sym.st_name(endian) as usize..)
            .and_then(|n| n.split(|&b| b == 0).next())
            .unwrap_or_default();
        let Some(&(func, _)) = probes(lib).iter().find(|(f, _)| f.as_bytes() == name) else {
            continue;
        };
        let addr = sym.st_value(endian);
        if let Some((va, _, off)) = segs
            .iter()
            .find(|(va, size, _)| (*va..va.saturating_add(*size)).contains(&addr))
        {
            out.insert(func, addr - va + off);
        }
    }
    out
}

/// What TLS an executable carries (see [`static_tls`]), from its ELF headers and symbols in
/// `data` and the [`MARKS`] found in its bytes.
fn elf_tls<'a, R: object::ReadRef<'a>>(data: R, marks: u16) -> ExeTls {
    let Ok(elf) = object::File::parse(data) else {
        return ExeTls::Shared;
    };
    let has = |needle: &[u8]| {
        MARKS
            .iter()
            .position(|m| *m == needle)
            .is_some_and(|i| marks & (1 << i) != 0)
    };
    let go = elf.section_by_name(".go.buildinfo").is_some()
        || elf.section_by_name(".gopclntab").is_some()
        || elf.section_by_name(".note.go.buildid").is_some();
    if go {
        // Go keeps function names even in stripped binaries (runtime tables).
        return match has(b"crypto/tls.(*Conn)") {
            true => ExeTls::Blind("go-crypto-tls"),
            false => ExeTls::Shared,
        };
    }
    // One of `names` defined as a symbol; the walk (one for all the names) only where the
    // bytes hold `mark`, which each name holds (`SSL_write_ex` holds `SSL_write`).
    let defined = |mark: &[u8], names: &[&str]| {
        has(mark)
            && elf
                .symbols()
                .chain(elf.dynamic_symbols())
                .any(|s| !s.is_undefined() && s.name().is_ok_and(|n| names.contains(&n)))
    };
    if has(b"rustls") && (has(b"rustls::conn") || has(b"rustls/src") || has(b"rustls-")) {
        return ExeTls::Blind("rustls");
    }
    // BoringSSL linked in and stripped (Bun, hence Claude Code): no symbol left, but its
    // version string and the names of its C++ sources (assertion messages) stay.
    if has(b"BoringSSL") && (has(b"ssl_lib.cc") || has(b"handshake_client.cc")) {
        return ExeTls::Blind("boringssl");
    }
    if defined(b"SSL_write", &["SSL_write", "SSL_write_ex"]) || has(b"ssl/statem/") {
        if has(b"BoringSSL")
            || defined(b"BORINGSSL_self_test", &["BORINGSSL_self_test"])
            || has(b"boringssl")
        {
            return ExeTls::Blind("boringssl");
        }
        return ExeTls::Blind("static-openssl");
    }
    if defined(b"gnutls_record_send", &["gnutls_record_send"]) {
        return ExeTls::Blind("static-gnutls");
    }
    ExeTls::Shared
}

/// Probes per library: (program, function, return probe).
fn probes(lib: TlsLib) -> &'static [(&'static str, bool)] {
    match lib {
        TlsLib::OpenSsl => &[
            ("SSL_write", false),
            ("SSL_write", true),
            ("SSL_read", false),
            ("SSL_read", true),
            ("SSL_write_ex", false),
            ("SSL_write_ex", true),
            ("SSL_read_ex", false),
            ("SSL_read_ex", true),
            ("SSL_do_handshake", false),
            ("SSL_do_handshake", true),
            ("SSL_connect", false),
            ("SSL_connect", true),
        ],
        TlsLib::GnuTls => &[
            ("gnutls_record_send", false),
            ("gnutls_record_send", true),
            ("gnutls_record_recv", false),
            ("gnutls_record_recv", true),
            ("gnutls_handshake", false),
            ("gnutls_handshake", true),
        ],
    }
}

impl Sensor {
    /// Hook one TLS library file for every process that maps it (the BPF programs keep only
    /// tracked threads). Once per file (device+inode): returns false when already hooked.
    pub fn hook_library(&mut self, path: &Path, lib: TlsLib) -> Result<bool, SensorError> {
        self.hook_file(path, lib, false)
    }

    /// Hook an executable that exports its linked-in TLS library's calls (see
    /// [`ExeTls::Exported`]), by file offset: libbpf's by-name lookup reads the full symbol
    /// table of a binary of hundreds of MiB for each probe, while the agent's first request is
    /// already on its way. The exported BoringSSL and OpenSSL calls share OpenSSL's signatures.
    pub fn hook_executable(&mut self, path: &Path, lib: TlsLib) -> Result<bool, SensorError> {
        self.hook_file(path, lib, true)
    }

    /// `exported`: by the offsets of the calls the file exports, else by name.
    fn hook_file(&mut self, path: &Path, lib: TlsLib, exported: bool) -> Result<bool, SensorError> {
        // The path may be the agent's (a library it maps, its executable): opened as a
        // regular file whatever is there now (see `open_expected`), and from then on named by
        // that descriptor, for libbpf's read of the symbols and the kernel's attach alike.
        // Off the loop, with the read of an executable's exported calls (see `offloop`).
        let p = path.to_path_buf();
        let opened = crate::offloop::within(move || {
            let (file, stamp) = open_expected(&p, None)?;
            let offsets = exported.then(|| exported_offsets(&file, lib));
            Some((file, stamp, offsets))
        });
        let Some(Some((file, stamp, offsets))) = opened else {
            return Err(SensorError::Attach {
                prog: format!("uprobes on {}", path.display()),
                source: libbpf_rs::Error::from_raw_os_error(match opened {
                    None => libc::ETIMEDOUT,
                    Some(_) => libc::ENOENT,
                }),
            });
        };
        if !self.tls_hooked.insert((stamp.dev, stamp.ino)) {
            return Ok(false);
        }
        let offsets = offsets.as_ref();
        let fd_path = std::path::PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        let mut attached = 0;
        let mut first_err = None;
        for &(func, ret) in probes(lib) {
            let progs = &self.skel.progs;
            let prog = match (func, ret) {
                ("SSL_write", false) => &progs.pr_ssl_write,
                ("SSL_write", true) => &progs.pr_ssl_write_ret,
                ("SSL_read", false) => &progs.pr_ssl_read,
                ("SSL_read", true) => &progs.pr_ssl_read_ret,
                ("SSL_write_ex", false) => &progs.pr_ssl_write_ex,
                ("SSL_write_ex", true) => &progs.pr_ssl_write_ex_ret,
                ("SSL_read_ex", false) => &progs.pr_ssl_read_ex,
                ("SSL_read_ex", true) => &progs.pr_ssl_read_ex_ret,
                ("gnutls_record_send", false) => &progs.pr_gnutls_send,
                ("gnutls_record_send", true) => &progs.pr_gnutls_send_ret,
                ("gnutls_record_recv", false) => &progs.pr_gnutls_recv,
                ("gnutls_record_recv", true) => &progs.pr_gnutls_recv_ret,
                ("SSL_do_handshake", false) => &progs.pr_ssl_handshake,
                ("SSL_do_handshake", true) => &progs.pr_ssl_handshake_ret,
                ("SSL_connect", false) => &progs.pr_ssl_connect,
                ("SSL_connect", true) => &progs.pr_ssl_connect_ret,
                ("gnutls_handshake", false) => &progs.pr_gnutls_handshake,
                _ => &progs.pr_gnutls_handshake_ret,
            };
            // By name, or at the offset found for it (a function the file does not export is
            // skipped like a missing one).
            let (func_name, at) = match offsets.map(|o| o.get(func)) {
                None => (Some(func.to_string()), 0),
                Some(Some(&off)) => (None, off as usize),
                Some(None) => continue,
            };
            let opts = UprobeOpts {
                retprobe: ret,
                func_name,
                ..Default::default()
            };
            match prog.attach_uprobe_with_opts(-1, &fd_path, at, opts) {
                Ok(link) => {
                    attached += 1;
                    let fd = prog.as_fd().as_raw_fd();
                    if !self.prog_fds.contains(&fd) {
                        self.prog_fds.push(fd);
                    }
                    self._links.push(link);
                }
                // An older library may lack the _ex pair; the plain calls are what must work.
                Err(e) => {
                    tracing::debug!("uprobe {func} in {}: {e}", path.display());
                    first_err.get_or_insert(e);
                }
            }
        }
        if attached < 4 {
            return Err(SensorError::Attach {
                prog: format!("uprobes on {} ({})", path.display(), lib.as_str()),
                source: first_err
                    .unwrap_or_else(|| libbpf_rs::Error::from_raw_os_error(libc::ENOENT)),
            });
        }
        tracing::debug!("hooked {} ({attached} probes)", path.display());
        Ok(true)
    }

    /// Whether this file (userspace st_dev, inode) is hooked.
    pub fn is_hooked(&self, dev: u64, ino: u64) -> bool {
        self.tls_hooked.contains(&(dev, ino))
    }
}

/// The kernel half of TLS interception (`--tls-intercept`): where each redirected connection
/// of the agent was going, by the local port of its socket. Another thread (the proxy) owns it.
pub struct InterceptMap(libbpf_rs::MapHandle);

impl InterceptMap {
    /// The process and original destination of the agent's socket `peer` (what the proxy
    /// sees as its peer), removed from the map: a later connection from the same port is
    /// another one.
    pub fn take(&self, peer: std::net::SocketAddr) -> Option<(u32, std::net::SocketAddr)> {
        use libbpf_rs::MapCore;
        use proctor_probes::wire::{pr_icpt_key, pr_icpt_orig};
        let family = if peer.is_ipv4() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        } as u16;
        let key = pr_icpt_key {
            port: peer.port(),
            family,
        };
        let kb = crate::as_bytes(&key);
        let v = self.0.lookup(kb, libbpf_rs::MapFlags::ANY).ok()??;
        let _ = self.0.delete(kb);
        let o: pr_icpt_orig = crate::from_bytes(&v)?;
        let ip = match o.family as i32 {
            libc::AF_INET => std::net::IpAddr::from([o.addr[0], o.addr[1], o.addr[2], o.addr[3]]),
            libc::AF_INET6 => std::net::IpAddr::from(o.addr),
            _ => return None,
        };
        Some((o.pid, std::net::SocketAddr::new(ip, o.port)))
    }
}

impl Sensor {
    /// Turn interception on for the agent's cgroup (its directory open as `cgroup_fd`): its
    /// TCP connects to `ports` go to the proxy on 127.0.0.1:`port4` (and [::1]:`port6`). The
    /// cgroup's connect programs do the redirect (attached already with the cgroup); this
    /// attaches the sockops program that files each redirect by local port, then sets the maps.
    pub fn intercept(
        &mut self,
        cgroup_fd: std::os::fd::RawFd,
        port4: u16,
        port6: Option<u16>,
        ports: &[u16],
    ) -> Result<InterceptMap, SensorError> {
        use libbpf_rs::MapCore;
        use proctor_probes::wire::pr_icpt_cfg;
        let map_err = |map: &'static str| move |source| SensorError::Map { map, source };
        for p in ports {
            self.skel
                .maps
                .icpt_ports
                .update(
                    &p.to_ne_bytes(),
                    &1u32.to_ne_bytes(),
                    libbpf_rs::MapFlags::ANY,
                )
                .map_err(map_err("icpt_ports"))?;
        }
        let prog = &mut self.skel.progs.pr_icpt_sockops;
        let link = prog
            .attach_cgroup(cgroup_fd)
            .map_err(|source| SensorError::Attach {
                prog: "pr_icpt_sockops".into(),
                source,
            })?;
        self.prog_fds.push(prog.as_fd().as_raw_fd());
        self._links.push(link);
        let handle = libbpf_rs::MapHandle::try_from(&self.skel.maps.icpt_by_port)
            .map_err(map_err("icpt_by_port"))?;
        // Last: from here on connects are redirected, and everything they need is in place.
        let cfg = pr_icpt_cfg {
            port4,
            port6: port6.unwrap_or(0),
            _pad: 0,
        };
        self.skel
            .maps
            .icpt_cfg
            .update(
                &0u32.to_ne_bytes(),
                crate::as_bytes(&cfg),
                libbpf_rs::MapFlags::ANY,
            )
            .map_err(map_err("icpt_cfg"))?;
        Ok(InterceptMap(handle))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_kind_by_name() {
        assert_eq!(
            TlsLib::of_path(Path::new("/usr/lib/libssl.so.3")),
            Some(TlsLib::OpenSsl)
        );
        assert_eq!(
            TlsLib::of_path(Path::new("/x/libgnutls.so.30.34.3")),
            Some(TlsLib::GnuTls)
        );
        assert_eq!(TlsLib::of_path(Path::new("/x/libssl3.so")), None);
        assert_eq!(TlsLib::of_path(Path::new("/x/libcrypto.so.3")), None);
    }

    #[test]
    fn maps_lines() {
        let l = "7f1c-7f2c r-xp 00022000 fe:00 1234                       /opt/my env/libssl.so.3";
        assert_eq!(
            maps_line(l),
            Some((Path::new("/opt/my env/libssl.so.3"), 1234))
        );
        assert_eq!(maps_line("7f1c-7f2c rw-p 00000000 00:00 0 "), None);
        assert_eq!(
            maps_line("7f1c-7f2c rw-p 00000000 00:00 0      [heap]"),
            None
        );
        assert_eq!(
            maps_line("7f1c-7f2c r-xp 0 fe:00 9 /tmp/libssl.so.3 (deleted)"),
            None
        );
        assert_eq!(maps_line("garbage"), None);
        assert_eq!(maps_line("a b c d notanumber /x"), None);
    }

    #[test]
    fn dynamic_binaries_and_garbage_are_not_static_tls() {
        // curl links libssl dynamically: SSL_write is an undefined import, not its own TLS.
        for bin in ["/usr/bin/curl", "/bin/sh"] {
            if Path::new(bin).exists() {
                assert_eq!(
                    static_tls(Path::new(bin), None),
                    Some(ExeTls::Shared),
                    "{bin}"
                );
            }
        }
        let dir = std::env::temp_dir().join(format!("proctor-tls-test-{}", std::process::id()));
        std::fs::write(&dir, b"\x7fELF garbage that is not an ELF file").unwrap();
        assert_eq!(static_tls(&dir, None), Some(ExeTls::Shared));
        // Not the expected file: nothing is said about it.
        assert_eq!(static_tls(&dir, Some((0, 0))), None);
        assert_eq!(static_tls(Path::new("/nonexistent/x"), None), None);
        let _ = std::fs::remove_file(&dir);
    }

    fn tempfile_path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("proctor-tls-{name}-{}", std::process::id()))
    }

    fn bytes_tls(elf: &[u8]) -> ExeTls {
        elf_tls(elf, marks_in(elf).unwrap())
    }

    #[test]
    fn a_mark_across_two_read_pieces_is_found() {
        // The pieces end every SCAN_CHUNK bytes.
        let b = SCAN_CHUNK;
        for at in [0, b - 5, b - 1, b, 2 * b - 9, 2 * b + 30] {
            let mut data = vec![b'x'; at];
            data.extend_from_slice(b"handshake_client.cc");
            data.extend_from_slice(&[b'y'; 100]);
            let bit = 1
                << MARKS
                    .iter()
                    .position(|m| *m == b"handshake_client.cc")
                    .unwrap();
            assert_eq!(marks_in(&data[..]).unwrap(), bit, "at {at}");
        }
        // Short reads (a pipe, a file being written) split a mark anywhere.
        struct Dribble<'a>(&'a [u8]);
        impl std::io::Read for Dribble<'_> {
            fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.len().min(out.len()).min(7);
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let data = b"..crypto/tls.(*Conn)..BoringSSL..ssl/statem/..";
        assert_eq!(
            marks_in(Dribble(data)).unwrap(),
            marks_in(&data[..]).unwrap()
        );
        assert_eq!(marks_in(Dribble(data)).unwrap().count_ones(), 3);
        assert_eq!(marks_in(&b"rustls::conn"[..]).unwrap().count_ones(), 2);
        // Marks that overlap each other are all found, as by an overlapping search.
        let bit = |m: &[u8]| 1u16 << MARKS.iter().position(|x| *x == m).unwrap();
        assert_eq!(
            marks_in(&b"boringssl_lib.cc"[..]).unwrap(),
            bit(b"boringssl") | bit(b"ssl_lib.cc")
        );
        assert_eq!(
            marks_in(&b"xrustls-rustls/src"[..]).unwrap(),
            bit(b"rustls") | bit(b"rustls-") | bit(b"rustls/src")
        );
        assert_eq!(marks_in(&b""[..]).unwrap(), 0);
    }

    #[test]
    fn stripped_boringssl_is_named() {
        let mut elf = std::fs::read("/bin/true").unwrap();
        elf.extend_from_slice(b"\0BoringSSL\0../../ssl/ssl_lib.cc\0");
        assert_eq!(bytes_tls(&elf), ExeTls::Blind("boringssl"));
        // Through the file, after the lazy look at its exports: the whole file is read.
        let f = tempfile_path("boring");
        std::fs::write(&f, &elf).unwrap();
        assert_eq!(static_tls(&f, None), Some(ExeTls::Blind("boringssl")));
        let _ = std::fs::remove_file(&f);
        // The version string alone (a program that merely mentions it) is not enough.
        let mut elf = std::fs::read("/bin/true").unwrap();
        elf.extend_from_slice(b"\0BoringSSL\0");
        assert_eq!(bytes_tls(&elf), ExeTls::Shared);
    }

    #[test]
    fn the_cache_answers_for_settled_files_and_reads_fresh_ones_again() {
        let mut cache = StaticTlsCache::new();
        // A file last changed long ago is read once.
        assert_eq!(
            cache.first(&[PathBuf::from("/bin/true")], None, None),
            Some(ExeTls::Shared)
        );
        assert_eq!(cache.len(), 1);
        assert_eq!(
            cache.first(&[PathBuf::from("/bin/true")], None, None),
            Some(ExeTls::Shared)
        );
        assert_eq!(cache.len(), 1);
        // A file just written is read every time: a rewrite in place within the same tick of
        // the file clock (the same inode, size and times) must not be answered from the cache.
        let plain = std::fs::read("/bin/true").unwrap();
        let mut boring = plain.clone();
        boring.extend_from_slice(b"\0BoringSSL\0../../ssl/ssl_lib.cc\0");
        let f = tempfile_path("cache");
        std::fs::write(&f, &boring).unwrap();
        let id = {
            let m = std::fs::metadata(&f).unwrap();
            Some((m.dev(), m.ino()))
        };
        assert_eq!(
            cache.first(std::slice::from_ref(&f), id, None),
            Some(ExeTls::Blind("boringssl"))
        );
        let mut same_size = plain.clone();
        same_size.resize(boring.len(), 0);
        std::fs::write(&f, &same_size).unwrap();
        assert_eq!(std::fs::metadata(&f).unwrap().ino(), id.unwrap().1);
        assert_eq!(
            cache.first(std::slice::from_ref(&f), id, None),
            Some(ExeTls::Shared)
        );
        assert_eq!(cache.len(), 1);
        // Not the expected file: nothing is said about it.
        assert_eq!(
            cache.first(std::slice::from_ref(&f), Some((0, 0)), None),
            None
        );
        let _ = std::fs::remove_file(&f);
    }

    #[test]
    fn defined_tls_calls_are_found_and_named_calls_alone_are_not() {
        // Files that define the calls (the system's libraries, as an executable linking them
        // in statically would; through the file they are hooked by their exports instead).
        for (lib, want) in [
            ("/usr/lib/x86_64-linux-gnu/libssl.so.3", "static-openssl"),
            ("/usr/lib/x86_64-linux-gnu/libgnutls.so.30", "static-gnutls"),
        ] {
            let bytes = std::fs::read(lib).unwrap();
            assert_eq!(bytes_tls(&bytes), ExeTls::Blind(want), "{lib}");
        }
        // The names in a file's bytes without a defined symbol (a string, an import) are not.
        let mut elf = std::fs::read("/bin/true").unwrap();
        elf.extend_from_slice(b"\0SSL_write_ex\0gnutls_record_send\0BORINGSSL_self_test\0");
        assert_eq!(bytes_tls(&elf), ExeTls::Shared);
    }

    #[test]
    fn node_exports_its_openssl() {
        // NodeSource's node links OpenSSL statically and exports its calls (`nm -D`).
        let node = Path::new("/usr/bin/node");
        if node.exists() {
            assert_eq!(
                static_tls(node, None),
                Some(ExeTls::Exported(TlsLib::OpenSsl))
            );
        }
    }
}
