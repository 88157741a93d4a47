//! The typed fast decode for the observation kinds that make up nearly all of a recorded log
//! (`exec`, `file_open`, `file_open_seen`, `path_change`, `connect`, `send`, `fork`, `exit`).
//!
//! A log written by proctor holds one flat object per line whose members are plain strings,
//! integers and booleans (`exec`'s `argv` and `env` are arrays of strings, `file_open_seen`'s
//! `files` an array of flat objects). For
//! such a line one scan over the bytes fills the record's fields directly, with no tokenizer
//! state machine, no raw-value copies and no second pass. The scan accepts only a narrow,
//! unambiguous subset of JSON: strings without escapes, integers in JSON's own syntax that fit
//! their field, `true`/`false`, member names without escapes, each known member once. Anything
//! else (an escape, a float, a `null`, any other nested value, a duplicate, a member it does
//! not know, another kind) returns `None` and the general decoder reads the line, so a line is
//! either decoded exactly as the general decoder would decode it or not at all (a test checks
//! this on every fixture line and on every one-byte edit of sample lines).

use proctor_model::{
    Access, Bytes, Connect, Event, Exec, Exit, Family, FileOpen, FileOpenSeen, Fork, Identity,
    PathChange, Record, SeenFile, Send, SockAddr,
};

/// One scalar member value, borrowed from the line.
#[derive(Clone, Copy)]
enum Val<'a> {
    Str(&'a str),
    /// A non-negative integer.
    UInt(u64),
    /// A negative integer.
    Neg(i64),
    Bool(bool),
}

impl<'a> Val<'a> {
    fn str(self) -> Option<&'a str> {
        match self {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }
    fn u64(self) -> Option<u64> {
        match self {
            Val::UInt(n) => Some(n),
            _ => None,
        }
    }
    fn u32(self) -> Option<u32> {
        u32::try_from(self.u64()?).ok()
    }
    fn u16(self) -> Option<u16> {
        u16::try_from(self.u64()?).ok()
    }
    fn i32(self) -> Option<i32> {
        match self {
            Val::UInt(n) => i32::try_from(n).ok(),
            Val::Neg(n) => i32::try_from(n).ok(),
            _ => None,
        }
    }
    fn bool(self) -> Option<bool> {
        match self {
            Val::Bool(b) => Some(b),
            _ => None,
        }
    }
}

// Slots for the members the fast kinds know. SEQ..=TIME are the chain members and `time`,
// read only to be skipped, as the general decoder skips them.
const TYPE: usize = 0;
const TS_NS: usize = 1;
const AGENT_ID: usize = 2;
const PID: usize = 3;
const PPID: usize = 4;
const COMM: usize = 5;
const EXEC_ID: usize = 6;
const UID: usize = 7;
const GID: usize = 8;
const LOGINUID: usize = 9;
const CGROUP_ID: usize = 10;
const SEQ: usize = 11;
const HASH_PREV: usize = 12;
const HASH_SELF: usize = 13;
const TIME: usize = 14;
const PATH: usize = 15;
const FLAGS: usize = 16;
const ACCESS: usize = 17;
const CREATE: usize = 18;
const TRUNCATE: usize = 19;
const DEV: usize = 20;
const INO: usize = 21;
const ERROR: usize = 22;
const PATH_TRUNCATED: usize = 23;
const CHILD_PID: usize = 24;
const EXIT_CODE: usize = 25;
const SIGNAL: usize = 26;
const FAMILY: usize = 27;
const ADDR: usize = 28;
const PORT: usize = 29;
const PROTOCOL: usize = 30;
const KSLOT: usize = 31;
const KSEQ: usize = 32;
const BYTES: usize = 33;
const SYSCALL: usize = 34;
const CREATED: usize = 35;
const OP: usize = 36;
const NEW_PATH: usize = 37;
const COUNT: usize = 38;
const LAST_TS_NS: usize = 39;
const SLOT: usize = 40;
/// `file_open_seen`'s array of folded files: read by [`Scan::files`], not as a scalar.
const FILES: usize = 41;
const FILENAME: usize = 42;
/// `exec`'s arrays of strings, read by [`Scan::strings`].
const ARGV: usize = 43;
const ARGV_TRUNCATED: usize = 44;
const FILELESS: usize = 45;
const BUILD_ID: usize = 46;
const EUID: usize = 47;
const EGID: usize = 48;
const ENV: usize = 49;
const ENV_TRUNCATED: usize = 50;
const ENV_UNREAD: usize = 51;
const REPEATS: usize = 52;
const SLOTS: usize = 53;
const _: () = assert!(SLOTS <= 64, "slots are bits of a u64");

fn slot(name: &[u8]) -> Option<usize> {
    Some(match name {
        b"type" => TYPE,
        b"ts_ns" => TS_NS,
        b"agent_id" => AGENT_ID,
        b"pid" => PID,
        b"ppid" => PPID,
        b"comm" => COMM,
        b"exec_id" => EXEC_ID,
        b"uid" => UID,
        b"gid" => GID,
        b"loginuid" => LOGINUID,
        b"cgroup_id" => CGROUP_ID,
        b"seq" => SEQ,
        b"hash_prev" => HASH_PREV,
        b"hash_self" => HASH_SELF,
        b"time" => TIME,
        b"path" => PATH,
        b"flags" => FLAGS,
        b"access" => ACCESS,
        b"create" => CREATE,
        b"truncate" => TRUNCATE,
        b"dev" => DEV,
        b"ino" => INO,
        b"error" => ERROR,
        b"path_truncated" => PATH_TRUNCATED,
        b"child_pid" => CHILD_PID,
        b"exit_code" => EXIT_CODE,
        b"signal" => SIGNAL,
        b"family" => FAMILY,
        b"addr" => ADDR,
        b"port" => PORT,
        b"protocol" => PROTOCOL,
        b"kslot" => KSLOT,
        b"kseq" => KSEQ,
        b"bytes" => BYTES,
        b"syscall" => SYSCALL,
        b"created" => CREATED,
        b"op" => OP,
        b"new_path" => NEW_PATH,
        b"count" => COUNT,
        b"last_ts_ns" => LAST_TS_NS,
        b"slot" => SLOT,
        b"files" => FILES,
        b"filename" => FILENAME,
        b"argv" => ARGV,
        b"argv_truncated" => ARGV_TRUNCATED,
        b"fileless" => FILELESS,
        b"build_id" => BUILD_ID,
        b"euid" => EUID,
        b"egid" => EGID,
        b"env" => ENV,
        b"env_truncated" => ENV_TRUNCATED,
        b"env_unread" => ENV_UNREAD,
        b"repeats" => REPEATS,
        _ => return None,
    })
}

/// Members of the kind being decoded, as a mask of slots; a member of another kind makes the
/// line fall back (the general decoder ignores it, and so would this one, but the fallback is
/// simpler to prove equal).
fn own(kind: &[u8]) -> u64 {
    let range = |a: usize, b: usize| (u64::MAX >> (63 - b)) & !((1u64 << a) - 1);
    let common = range(0, CGROUP_ID) | range(SEQ, TIME) | 1 << KSLOT | 1 << KSEQ;
    // A counted repeat of an open or a connect.
    let repeated = 1 << REPEATS | 1 << LAST_TS_NS;
    common
        | match kind {
            b"file_open" => range(PATH, PATH_TRUNCATED) | 1 << CREATED | repeated,
            b"fork" => 1 << CHILD_PID,
            b"exit" => 1 << EXIT_CODE | 1 << SIGNAL,
            b"connect" => range(FAMILY, PROTOCOL) | 1 << PATH | repeated,
            b"send" => range(FAMILY, PROTOCOL) | 1 << PATH | 1 << BYTES | 1 << SYSCALL,
            b"path_change" => {
                1 << OP
                    | 1 << PATH
                    | 1 << NEW_PATH
                    | 1 << FLAGS
                    | 1 << SYSCALL
                    | 1 << PATH_TRUNCATED
            }
            b"file_open_seen" => range(COUNT, FILES),
            b"exec" => range(FILENAME, ENV_UNREAD) | 1 << DEV | 1 << INO,
            _ => 0,
        }
}

struct Scan<'a> {
    b: &'a [u8],
    i: usize,
    /// Where the line's quotes are, when it has no backslash and no control byte (so each
    /// quote ends a string and no string needs a byte-by-byte look).
    quotes: Option<&'a proctor_model::QuoteMap<'a>>,
}

impl<'a> Scan<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    /// A branch, not a flag added to the position, as verify's scan found: the outcome is
    /// predictable, and the flag made every next load wait for this compare.
    #[inline(always)]
    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            return true;
        }
        false
    }

    /// A string without escapes or control characters (the opening quote already eaten),
    /// checked to be UTF-8. Only a string with a non-ASCII byte is checked, rather than the
    /// whole line up front: bytes outside strings must be structural ASCII, or the scan fails.
    fn plain_string(&mut self) -> Option<&'a str> {
        if let Some(q) = self.quotes {
            let end = q.next_quote(self.i)?;
            let s = &self.b[self.i..end];
            self.i = end + 1;
            return if !q.non_ascii || s.is_ascii() {
                // SAFETY: every byte of `s` is below 0x80, and ASCII is UTF-8.
                Some(unsafe { std::str::from_utf8_unchecked(s) })
            } else {
                std::str::from_utf8(s).ok()
            };
        }
        let rest = &self.b[self.i..];
        let mut n = proctor_model::json_ascii_run(rest);
        let mut ascii = true;
        while rest.get(n).is_some_and(|&c| c >= 0x80) {
            ascii = false;
            n += 1 + proctor_model::json_ascii_run(&rest[n + 1..]);
        }
        if rest.get(n) != Some(&b'"') {
            return None;
        }
        self.i += n + 1;
        let s = &rest[..n];
        if ascii {
            // SAFETY: every byte of `s` is below 0x80 (`json_ascii_run` stopped at none of
            // them), and ASCII is UTF-8.
            Some(unsafe { std::str::from_utf8_unchecked(s) })
        } else {
            std::str::from_utf8(s).ok()
        }
    }

    /// Inlined: returned through memory, the value was copied in pieces that straddled the
    /// callee's stores, a store-forwarding stall on every member (about a tenth of replay's
    /// time on a log of sends, once the array members made the caller too big to inline it).
    #[inline(always)]
    fn value(&mut self) -> Option<Val<'a>> {
        self.ws();
        let c = *self.b.get(self.i)?;
        match c {
            b'"' => {
                self.i += 1;
                self.plain_string().map(Val::Str)
            }
            b't' if self.b[self.i..].starts_with(b"true") => {
                self.i += 4;
                Some(Val::Bool(true))
            }
            b'f' if self.b[self.i..].starts_with(b"false") => {
                self.i += 5;
                Some(Val::Bool(false))
            }
            b'-' => {
                self.i += 1;
                let n = self.digits()?;
                // -0 is valid JSON and decodes as 0 into integer fields; leave it to serde.
                if n == 0 {
                    return None;
                }
                0i64.checked_sub_unsigned(n).map(Val::Neg)
            }
            b'0'..=b'9' => self.digits().map(Val::UInt),
            _ => None,
        }
    }

    /// An integer's digits in JSON syntax (no leading zero), not followed by a fraction or
    /// an exponent, that fits a u64. The digits are counted and summed in one loop, without
    /// overflow checks (up to 19 digits cannot overflow; a checked loop kept the sum in
    /// memory: a tenth of replay's time); a 20-digit number is summed again with checks.
    fn digits(&mut self) -> Option<u64> {
        let rest = &self.b[self.i..];
        let (mut n, mut len) = (0u64, 0usize);
        while let Some(d) = rest
            .get(len)
            .map(|c| c.wrapping_sub(b'0'))
            .filter(|&d| d <= 9)
        {
            n = n.wrapping_mul(10).wrapping_add(u64::from(d));
            len += 1;
        }
        if len == 0 || len > 20 || (len > 1 && rest[0] == b'0') {
            return None;
        }
        if let Some(b'.' | b'e' | b'E') = rest.get(len) {
            return None;
        }
        if len == 20 {
            n = 0;
            for &d in &rest[..19] {
                n = n * 10 + u64::from(d - b'0');
            }
            n = n.checked_mul(10)?.checked_add(u64::from(rest[19] - b'0'))?;
        }
        self.i += len;
        Some(n)
    }
}

impl<'a> Scan<'a> {
    /// An object whose members `member` reads, given each name with the scan at its value.
    #[inline(always)]
    fn object(&mut self, mut member: impl FnMut(&mut Self, &'a [u8]) -> Option<()>) -> Option<()> {
        if !self.eat(b'{') {
            return None;
        }
        if self.eat(b'}') {
            return Some(());
        }
        loop {
            if !self.eat(b'"') {
                return None;
            }
            let name = self.plain_string()?.as_bytes();
            if !self.eat(b':') {
                return None;
            }
            member(self, name)?;
            if self.eat(b'}') {
                return Some(());
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }

    /// An array whose elements `item` reads.
    fn array<T>(&mut self, mut item: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        if !self.eat(b'[') {
            return None;
        }
        let mut out = Vec::new();
        if self.eat(b']') {
            return Some(out);
        }
        loop {
            out.push(item(self)?);
            if self.eat(b']') {
                return Some(out);
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }

    /// An array of plain strings (`exec`'s `argv` and `env`).
    fn strings(&mut self) -> Option<Vec<Bytes>> {
        self.array(|s| {
            if !s.eat(b'"') {
                return None;
            }
            s.plain_string().map(Bytes::from)
        })
    }

    /// `file_open_seen`'s `files`: an array of flat objects, each a [`SeenFile`] in the same
    /// subset as the line (each known member once, no member of another kind).
    fn files(&mut self) -> Option<Vec<SeenFile>> {
        const KSEQ: u8 = 1;
        const PATH: u8 = 2;
        const FLAGS: u8 = 4;
        const DEV: u8 = 8;
        const INO: u8 = 16;
        const COUNT: u8 = 32;
        self.array(|s| {
            let mut f = SeenFile {
                kseq: 0,
                path: None,
                flags: 0,
                dev: 0,
                ino: 0,
                count: 0,
            };
            let mut seen = 0u8;
            s.object(|s, name| {
                let v = s.value()?;
                let bit = match name {
                    b"kseq" => KSEQ,
                    b"path" => PATH,
                    b"flags" => FLAGS,
                    b"dev" => DEV,
                    b"ino" => INO,
                    b"count" => COUNT,
                    _ => return None,
                };
                if seen & bit != 0 {
                    return None;
                }
                seen |= bit;
                match bit {
                    KSEQ => f.kseq = v.u64()?,
                    PATH => f.path = Some(Bytes::from(v.str()?)),
                    FLAGS => f.flags = v.u32()?,
                    DEV => f.dev = v.u64()?,
                    INO => f.ino = v.u64()?,
                    _ => f.count = v.u64()?,
                }
                Some(())
            })?;
            // Every member but the path is required, as the derived decoder has it.
            (seen | PATH == 63).then_some(f)
        })
    }
}

/// An optional member: `None` when absent, the value when `read` takes it, and `None` for the
/// whole line (fall back) when the member is there but of another type.
fn absent_or<'a, T>(
    v: Option<Val<'a>>,
    read: impl FnOnce(Val<'a>) -> Option<T>,
) -> Option<Option<T>> {
    match v {
        None => Some(None),
        Some(v) => read(v).map(Some),
    }
}

/// The record on `line` (already trimmed), when the line is of a fast kind and in the subset
/// described in the module docs; `None` sends it to the general decoder.
pub(super) fn decode(line: &[u8]) -> Option<Record> {
    proctor_model::with_quote_map(line, |map| {
        decode_with(line, (!map.backslash && !map.control).then_some(map))
    })
}

fn decode_with(line: &[u8], quotes: Option<&proctor_model::QuoteMap<'_>>) -> Option<Record> {
    // The value of each slot, valid where `seen` has its bit (one mask instead of an array
    // of options: the duplicate and the own-kind tests are a bit test each).
    let mut vals: [Val<'_>; SLOTS] = [Val::Bool(false); SLOTS];
    let mut seen = 0u64;
    let mut files: Option<Vec<SeenFile>> = None;
    let (mut argv, mut env): (Option<Vec<Bytes>>, Option<Vec<Bytes>>) = (None, None);
    let mut s = Scan {
        b: line,
        i: 0,
        quotes,
    };
    s.object(|s, name| {
        // The arrays are kept apart; their slots still mark them seen, so a second one of a
        // name is a duplicate below, and falls back.
        let v = match name {
            b"files" => {
                files = Some(s.files()?);
                Val::Bool(false)
            }
            b"argv" => {
                argv = Some(s.strings()?);
                Val::Bool(false)
            }
            b"env" => {
                env = Some(s.strings()?);
                Val::Bool(false)
            }
            _ => s.value()?,
        };
        // A container's members: the general decoder reads them.
        if matches!(name, b"container_runtime" | b"container_id" | b"pod_uid") {
            return None;
        }
        // A member no fast kind has may still be a field of the record (a connect's
        // `peer_pid`, a field added later): the general decoder reads it, so that replay
        // judges the record the live run judged.
        let k = slot(name)?;
        if seen & 1 << k != 0 {
            return None;
        }
        seen |= 1 << k;
        vals[k] = v;
        Some(())
    })?;
    s.ws();
    if s.i != line.len() {
        return None;
    }
    let get = |k: usize| (seen & 1 << k != 0).then_some(vals[k]);
    let kind = get(TYPE)?.str()?.as_bytes();
    // Members known to another fast kind: fall back (see `own`).
    if seen & !own(kind) != 0 {
        return None;
    }
    let bytes = |k: usize| get(k)?.str().map(Bytes::from);
    // A boolean member whose absence means false.
    let flag = |k: usize| absent_or(get(k), Val::bool).map(Option::unwrap_or_default);
    // An integer member whose absence means 0.
    let opt_u64 = |k: usize| absent_or(get(k), Val::u64).map(Option::unwrap_or_default);
    // The destination of a connect or a send (flattened into the line).
    let sockaddr = || {
        Some(SockAddr {
            family: match get(FAMILY)?.str()? {
                "inet" => Family::Inet,
                "inet6" => Family::Inet6,
                "unix" => Family::Unix,
                "other" => Family::Other,
                _ => return None,
            },
            addr: absent_or(get(ADDR), |v| v.str().map(str::to_owned))?,
            port: absent_or(get(PORT), Val::u16)?,
            path: absent_or(get(PATH), |v| v.str().map(Bytes::from))?,
        })
    };
    let event = match kind {
        b"file_open" => Event::FileOpen(FileOpen {
            path: bytes(PATH)?,
            flags: get(FLAGS)?.u32()?,
            access: match get(ACCESS)?.str()? {
                "read" => Access::Read,
                "write" => Access::Write,
                "read_write" => Access::ReadWrite,
                _ => return None,
            },
            create: get(CREATE)?.bool()?,
            created: flag(CREATED)?,
            truncate: get(TRUNCATE)?.bool()?,
            dev: get(DEV)?.u64()?,
            ino: get(INO)?.u64()?,
            error: absent_or(get(ERROR), Val::i32)?,
            path_truncated: flag(PATH_TRUNCATED)?,
            repeats: opt_u64(REPEATS)?,
            last_ts_ns: opt_u64(LAST_TS_NS)?,
            // A line with a `device`, `setid` or `mapped_exec` member took the general decoder.
            device: None,
            setid: false,
            mapped_exec: false,
        }),
        b"fork" => Event::Fork(Fork {
            child_pid: get(CHILD_PID)?.u32()?,
        }),
        b"exit" => Event::Exit(Exit {
            exit_code: absent_or(get(EXIT_CODE), Val::i32)?,
            signal: absent_or(get(SIGNAL), Val::i32)?,
        }),
        b"connect" => Event::Connect(Connect {
            dest: sockaddr()?,
            protocol: get(PROTOCOL)?.str()?.to_owned(),
            repeats: opt_u64(REPEATS)?,
            last_ts_ns: opt_u64(LAST_TS_NS)?,
            peer_dev: 0,
            peer_ino: 0,
            peer_pid: 0,
            peer_outside: false,
            peer_exe: None,
            netns: 0,
        }),
        b"send" => Event::Send(Send {
            dest: sockaddr()?,
            protocol: get(PROTOCOL)?.str()?.to_owned(),
            bytes: get(BYTES)?.u64()?,
            syscall: get(SYSCALL)?.str()?.to_owned(),
        }),
        b"path_change" => Event::PathChange(PathChange {
            op: get(OP)?.str()?.to_owned(),
            path: bytes(PATH)?,
            new_path: absent_or(get(NEW_PATH), |v| v.str().map(Bytes::from))?,
            flags: absent_or(get(FLAGS), Val::u32)?.unwrap_or(0),
            syscall: get(SYSCALL)?.str()?.to_owned(),
            path_truncated: flag(PATH_TRUNCATED)?,
        }),
        b"exec" => Event::Exec(Exec {
            filename: bytes(FILENAME)?,
            argv: argv?,
            argv_truncated: get(ARGV_TRUNCATED)?.bool()?,
            dev: get(DEV)?.u64()?,
            ino: get(INO)?.u64()?,
            fileless: flag(FILELESS)?,
            build_id: absent_or(get(BUILD_ID), |v| v.str().map(str::to_owned))?,
            euid: absent_or(get(EUID), Val::u32)?,
            egid: absent_or(get(EGID), Val::u32)?,
            env: env.unwrap_or_default(),
            env_truncated: flag(ENV_TRUNCATED)?,
            env_unread: flag(ENV_UNREAD)?,
            at_exec: None,
        }),
        b"file_open_seen" => Event::FileOpenSeen(FileOpenSeen {
            slot: absent_or(get(SLOT), Val::u32)?.unwrap_or(0),
            count: get(COUNT)?.u64()?,
            last_ts_ns: get(LAST_TS_NS)?.u64()?,
            files: files?,
        }),
        _ => return None,
    };
    let identity = match (get(UID), get(GID), get(LOGINUID), get(CGROUP_ID)) {
        (None, None, None, None) => None,
        (Some(u), Some(g), Some(l), Some(c)) => Some(Identity {
            uid: u.u32()?,
            gid: g.u32()?,
            loginuid: l.u32()?,
            cgroup_id: c.u64()?,
            // A line with container members took the general decoder.
            container: None,
        }),
        // Some of the four: the general decoder says what that means.
        _ => return None,
    };
    Some(Record {
        event,
        ts_ns: get(TS_NS)?.u64()?,
        agent_id: get(AGENT_ID)?.str()?.to_owned(),
        pid: get(PID)?.u32()?,
        ppid: get(PPID)?.u32()?,
        comm: bytes(COMM)?,
        exec_id: get(EXEC_ID)?.str()?.to_owned(),
        identity,
        // As the general decoder: both members, or no number.
        kseq: match (get(KSLOT), get(KSEQ)) {
            (Some(s), Some(n)) => Some(proctor_model::Kseq {
                kslot: s.u32()?,
                kseq: n.u64()?,
            }),
            _ => None,
        },
    })
}
