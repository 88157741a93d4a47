//! RFC 8785 canonical JSON written straight from `Serialize`, without building a
//! `serde_json::Value` first.
//!
//! The audit log canonicalises every record it writes; going through `Value` (a `BTreeMap` of
//! owned keys per object, a `String` per member) was the largest cost of the monitor under an
//! event storm. Here each object's members are serialised into one scratch buffer, sorted by name
//! (RFC 8785 order), and copied out once. The output is byte-identical to
//! `canonical_json(&serde_json::to_value(v)?)`, including its choices: exact integer digits,
//! non-finite floats as `null`, byte arrays as arrays of numbers (tests check it).

use crate::jcs::{write_f64, write_string};
use serde::ser::{self, Error as _, Serialize};
use std::ops::Range;

type Error = serde_json::Error;

/// A top-level object in canonical form, with where each member sits, so members can be
/// spliced in at their sorted place without re-serialising.
pub struct CanonObject {
    bytes: Vec<u8>,
    /// Member names, concatenated (one allocation for all).
    names: String,
    /// (range of the name in `names`, byte range of `"name":value` in `bytes`), in canonical
    /// order.
    members: Vec<(Range<usize>, Range<usize>)>,
}

impl CanonObject {
    /// Serialise `v`, which must serialise to a JSON object.
    pub fn of<T: Serialize + ?Sized>(v: &T) -> Result<CanonObject, crate::Error> {
        let mut bytes = Vec::with_capacity(512);
        let mut top = None;
        v.serialize(&mut Writer {
            out: &mut bytes,
            top: Some(&mut top),
        })?;
        let (names, members) = top.ok_or(crate::Error::NotAnObject)?;
        Ok(CanonObject {
            bytes,
            names,
            members,
        })
    }

    fn name(&self, i: usize) -> &str {
        &self.names[self.members[i].0.clone()]
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn has(&self, name: &str) -> bool {
        (0..self.members.len()).any(|i| self.name(i) == name)
    }

    /// The value of member `name` when it is a JSON string.
    pub fn get_str(&self, name: &str) -> Option<String> {
        let i = (0..self.members.len()).find(|&i| self.name(i) == name)?;
        let member = &self.bytes[self.members[i].1.clone()];
        // Skip `"name":` (the name is canonical JSON too, so its own length is known).
        let mut key = Vec::new();
        write_string(name, &mut key);
        serde_json::from_slice(&member[key.len() + 1..]).ok()
    }

    /// The value of member `name` when it is a JSON unsigned integer.
    pub fn get_u64(&self, name: &str) -> Option<u64> {
        let i = (0..self.members.len()).find(|&i| self.name(i) == name)?;
        let member = &self.bytes[self.members[i].1.clone()];
        let mut key = Vec::new();
        write_string(name, &mut key);
        std::str::from_utf8(&member[key.len() + 1..])
            .ok()?
            .parse()
            .ok()
    }

    /// Insert member `name` (absent so far) with `raw`, already canonical JSON, at its sorted
    /// place.
    pub fn insert_raw(&mut self, name: &str, raw: &[u8]) {
        let at = (0..self.members.len())
            .find(|&i| name_cmp(self.name(i).as_bytes(), name.as_bytes()).is_gt())
            .unwrap_or(self.members.len());
        let mut member = Vec::with_capacity(name.len() + raw.len() + 4);
        write_string(name, &mut member);
        member.push(b':');
        member.extend_from_slice(raw);
        // Member i starts right after `{` or `,`; a new last member goes before `}`.
        let (pos, lead, trail) = match self.members.get(at) {
            Some((_, r)) => (r.start, false, true),
            None => (self.bytes.len() - 1, !self.members.is_empty(), false),
        };
        let mut ins = Vec::with_capacity(member.len() + 1);
        if lead {
            ins.push(b',');
        }
        let start = pos + ins.len();
        ins.extend_from_slice(&member);
        let end = pos + ins.len();
        if trail {
            ins.push(b',');
        }
        let (len, shift) = (self.bytes.len(), ins.len());
        self.bytes.resize(len + shift, 0);
        self.bytes.copy_within(pos..len, pos + shift);
        self.bytes[pos..pos + shift].copy_from_slice(&ins);
        for (_, r) in &mut self.members[at..] {
            *r = r.start + shift..r.end + shift;
        }
        let n = self.names.len();
        self.names.push_str(name);
        self.members.insert(at, (n..self.names.len(), start..end));
    }

    pub fn insert_str(&mut self, name: &str, value: &str) {
        let mut raw = Vec::with_capacity(value.len() + 2);
        write_string(value, &mut raw);
        self.insert_raw(name, &raw);
    }

    pub fn insert_u64(&mut self, name: &str, value: u64) {
        self.insert_raw(name, itoa::Buffer::new().format(value).as_bytes());
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// RFC 8785 §3.2.3 order: by UTF-16 code units. For ASCII names that is byte order. Names are
/// UTF-8 (they come from `str`s).
fn name_cmp(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    if a.is_ascii() && b.is_ascii() {
        return a.cmp(b);
    }
    let utf16 = |x: &[u8]| -> Vec<u16> { String::from_utf8_lossy(x).encode_utf16().collect() };
    utf16(a).cmp(&utf16(b))
}

/// Canonical JSON of any `Serialize` value.
pub fn to_canonical<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(256);
    v.serialize(&mut Writer {
        out: &mut out,
        top: None,
    })?;
    Ok(out)
}

/// Member names and positions of a top-level object, filled when the value is one.
type TopMembers = (String, Vec<(Range<usize>, Range<usize>)>);
type TopSink<'a> = Option<&'a mut Option<TopMembers>>;

/// Serialises one value into `out`.
struct Writer<'a> {
    out: &'a mut Vec<u8>,
    /// Set for the top-level value of [`CanonObject::of`] only.
    top: TopSink<'a>,
}

/// An object being built: names and values serialised into one scratch buffer, sorted and
/// copied out at the end.
struct Object<'a> {
    out: &'a mut Vec<u8>,
    buf: Vec<u8>,
    /// (range of the raw name in `buf`, range of the value in `buf`)
    members: Vec<(Range<usize>, Range<usize>)>,
    /// A name was not ASCII: sort by UTF-16 code units the slow way.
    non_ascii: bool,
    /// A map key written to `buf`, waiting for its value.
    pending_key: Option<Range<usize>>,
    /// For a struct variant's `{"Variant": {...}}` wrapper.
    variant: Option<&'static str>,
    /// Receives the member positions when this is the top-level object of a [`CanonObject`].
    top: TopSink<'a>,
}

impl<'a> Object<'a> {
    fn new(out: &'a mut Vec<u8>, variant: Option<&'static str>, top: TopSink<'a>) -> Self {
        Object {
            out,
            buf: Vec::with_capacity(256),
            members: Vec::with_capacity(16),
            pending_key: None,
            non_ascii: false,
            variant,
            top,
        }
    }

    fn member<T: Serialize + ?Sized>(&mut self, name: Range<usize>, v: &T) -> Result<(), Error> {
        self.non_ascii |= !self.buf[name.clone()].is_ascii();
        let start = self.buf.len();
        v.serialize(&mut Writer {
            out: &mut self.buf,
            top: None,
        })?;
        self.members.push((name, start..self.buf.len()));
        Ok(())
    }

    fn name(&mut self, name: &str) -> Range<usize> {
        let start = self.buf.len();
        self.buf.extend_from_slice(name.as_bytes());
        start..self.buf.len()
    }

    fn finish(mut self) -> Result<(), Error> {
        let buf = &self.buf;
        // Stable sorts: members of the same name stay in the order they were serialised.
        if self.non_ascii {
            self.members
                .sort_by(|a, b| name_cmp(&buf[a.0.clone()], &buf[b.0.clone()]));
        } else {
            // ASCII names: byte order is UTF-16 order. Most names differ in their first eight
            // bytes, so compare those as one integer first.
            let head = |r: &Range<usize>| {
                let mut b = [0u8; 8];
                let n = r.len().min(8);
                b[..n].copy_from_slice(&buf[r.start..r.start + n]);
                u64::from_be_bytes(b)
            };
            self.members.sort_by(|a, b| {
                head(&a.0)
                    .cmp(&head(&b.0))
                    .then_with(|| buf[a.0.clone()].cmp(&buf[b.0.clone()]))
            });
        }
        // A name given twice (a flattened member over a field of the same name) keeps the last
        // value, as serde_json's Map does: the bytes stay those of the Value path.
        let mut i = 0;
        while i + 1 < self.members.len() {
            if buf[self.members[i].0.clone()] == buf[self.members[i + 1].0.clone()] {
                self.members.remove(i);
            } else {
                i += 1;
            }
        }
        let base = self.out.len();
        let out = &mut *self.out;
        if let Some(v) = self.variant {
            out.push(b'{');
            write_string(v, out);
            out.push(b':');
        }
        let mut names = String::new();
        let mut ranges = Vec::new();
        out.push(b'{');
        for (i, (k, r)) in self.members.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let start = out.len() - base;
            // Names were written from `str`s, so they are UTF-8.
            let k = std::str::from_utf8(&buf[k.clone()]).map_err(Error::custom)?;
            write_string(k, out);
            out.push(b':');
            out.extend_from_slice(&buf[r.clone()]);
            if self.top.is_some() {
                let n = names.len();
                names.push_str(k);
                ranges.push((n..names.len(), start..out.len() - base));
            }
        }
        out.push(b'}');
        if self.variant.is_some() {
            out.push(b'}');
        }
        if let Some(top) = self.top.take() {
            *top = Some((names, ranges));
        }
        Ok(())
    }
}

/// An array being built (also tuples and tuple variants).
struct Array<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
    variant: Option<&'static str>,
}

impl Array<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        v.serialize(&mut Writer {
            out: self.out,
            top: None,
        })
    }

    fn finish(self) -> Result<(), Error> {
        self.out.push(b']');
        if self.variant.is_some() {
            self.out.push(b'}');
        }
        Ok(())
    }
}

macro_rules! int {
    ($($f:ident: $t:ty),*) => {$(
        fn $f(self, v: $t) -> Result<(), Error> {
            self.out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
            Ok(())
        }
    )*};
}

impl<'a, 'b> ser::Serializer for &'b mut Writer<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Array<'b>;
    type SerializeTuple = Array<'b>;
    type SerializeTupleStruct = Array<'b>;
    type SerializeTupleVariant = Array<'b>;
    type SerializeMap = Object<'b>;
    type SerializeStruct = Object<'b>;
    type SerializeStructVariant = Object<'b>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.out
            .extend_from_slice(if v { b"true" as &[u8] } else { b"false" });
        Ok(())
    }
    int!(serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
         serialize_u8: u8, serialize_u16: u16, serialize_u32: u32, serialize_u64: u64,
         serialize_i128: i128, serialize_u128: u128);
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.serialize_f64(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        if v.is_finite() {
            write_f64(v, self.out);
        } else {
            // As serde_json's Value: no JSON number for NaN and infinities.
            self.out.extend_from_slice(b"null");
        }
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        write_string(v.encode_utf8(&mut [0; 4]), self.out);
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        write_string(v, self.out);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        let mut a = self.serialize_seq(Some(v.len()))?;
        for b in v {
            ser::SerializeSeq::serialize_element(&mut a, b)?;
        }
        ser::SerializeSeq::end(a)
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.serialize_unit()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<(), Error> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Error> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, v: &'static str) -> Result<(), Error> {
        self.serialize_str(v)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        self.top = None;
        self.out.push(b'{');
        write_string(variant, self.out);
        self.out.push(b':');
        v.serialize(&mut *self)?;
        self.out.push(b'}');
        Ok(())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Array<'b>, Error> {
        self.out.push(b'[');
        Ok(Array {
            out: self.out,
            first: true,
            variant: None,
        })
    }
    fn serialize_tuple(self, n: usize) -> Result<Array<'b>, Error> {
        self.serialize_seq(Some(n))
    }
    fn serialize_tuple_struct(self, _: &'static str, n: usize) -> Result<Array<'b>, Error> {
        self.serialize_seq(Some(n))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Array<'b>, Error> {
        self.out.push(b'{');
        write_string(variant, self.out);
        self.out.extend_from_slice(b":[");
        Ok(Array {
            out: self.out,
            first: true,
            variant: Some(variant),
        })
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Object<'b>, Error> {
        Ok(Object::new(self.out, None, self.top.take()))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Object<'b>, Error> {
        Ok(Object::new(self.out, None, self.top.take()))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Object<'b>, Error> {
        Ok(Object::new(self.out, Some(variant), None))
    }
}

/// The four array-like serde traits differ only in the element method's name.
macro_rules! array_impl {
    ($($tr:ident :: $f:ident),*) => {$(
        impl ser::$tr for Array<'_> {
            type Ok = ();
            type Error = Error;
            fn $f<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
                self.element(v)
            }
            fn end(self) -> Result<(), Error> {
                self.finish()
            }
        }
    )*};
}

array_impl!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl ser::SerializeMap for Object<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), Error> {
        let start = self.buf.len();
        k.serialize(KeyName(&mut self.buf))?;
        self.pending_key = Some(start..self.buf.len());
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        let k = self
            .pending_key
            .take()
            .ok_or_else(|| Error::custom("map value without a key"))?;
        self.member(k, v)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

/// Structs and struct variants serialise their fields alike.
macro_rules! struct_impl {
    ($($tr:ident),*) => {$(
        impl ser::$tr for Object<'_> {
            type Ok = ();
            type Error = Error;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                k: &'static str,
                v: &T,
            ) -> Result<(), Error> {
                let name = self.name(k);
                self.member(name, v)
            }
            fn end(self) -> Result<(), Error> {
                self.finish()
            }
        }
    )*};
}

struct_impl!(SerializeStruct, SerializeStructVariant);

/// Map keys: strings, and what serde_json also accepts as keys (integers, bools, chars, unit
/// variants), written raw (unescaped) to the object's scratch buffer.
struct KeyName<'a>(&'a mut Vec<u8>);

macro_rules! key_int {
    ($($f:ident: $t:ty),*) => {$(
        fn $f(self, v: $t) -> Result<(), Error> {
            self.0.extend_from_slice(v.to_string().as_bytes());
            Ok(())
        }
    )*};
}

impl ser::Serializer for KeyName<'_> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = ser::Impossible<(), Error>;
    type SerializeTuple = ser::Impossible<(), Error>;
    type SerializeTupleStruct = ser::Impossible<(), Error>;
    type SerializeTupleVariant = ser::Impossible<(), Error>;
    type SerializeMap = ser::Impossible<(), Error>;
    type SerializeStruct = ser::Impossible<(), Error>;
    type SerializeStructVariant = ser::Impossible<(), Error>;

    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.0.extend_from_slice(v.as_bytes());
        Ok(())
    }
    key_int!(serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
             serialize_u8: u8, serialize_u16: u16, serialize_u32: u32, serialize_u64: u64,
             serialize_i128: i128, serialize_u128: u128, serialize_bool: bool, serialize_char: char);
    fn serialize_unit_variant(self, _: &'static str, _: u32, v: &'static str) -> Result<(), Error> {
        self.serialize_str(v)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        v.serialize(self)
    }
    fn serialize_f32(self, _: f32) -> Result<(), Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_f64(self, _: f64) -> Result<(), Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_none(self) -> Result<(), Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_unit(self) -> Result<(), Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(key_must_be_a_string())
    }
}

fn key_must_be_a_string() -> Error {
    Error::custom("key must be a string")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical_json;
    use serde::Serialize;
    use serde_json::{json, Value};

    fn via_value<T: Serialize>(v: &T) -> Vec<u8> {
        canonical_json(&serde_json::to_value(v).unwrap())
    }

    fn same<T: Serialize>(v: &T) {
        assert_eq!(
            String::from_utf8(to_canonical(v).unwrap()).unwrap(),
            String::from_utf8(via_value(v)).unwrap()
        );
    }

    #[derive(Serialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    enum Tagged {
        A {
            z: u64,
            a: Option<i32>,
            #[serde(skip_serializing_if = "Option::is_none")]
            gone: Option<u8>,
        },
        B(Inner),
    }

    #[derive(Serialize)]
    struct Inner {
        #[serde(flatten)]
        flat: Flat,
        list: Vec<f64>,
        bytes: &'static [u8],
    }

    #[derive(Serialize)]
    struct Flat {
        m: std::collections::BTreeMap<String, u8>,
        k: char,
    }

    #[derive(Serialize)]
    enum Ext {
        Unit,
        New(u8),
        Tup(u8, String),
        Str { y: bool, x: () },
    }

    #[test]
    fn equals_the_value_path_on_every_serde_shape() {
        same(&Tagged::A {
            z: u64::MAX,
            a: None,
            gone: None,
        });
        let mut m = std::collections::BTreeMap::new();
        m.insert("\u{e000}".to_string(), 1);
        m.insert("\u{1f600}".to_string(), 2);
        m.insert("é".to_string(), 3);
        m.insert("\n\"".to_string(), 4);
        same(&Tagged::B(Inner {
            flat: Flat { m, k: 'x' },
            list: vec![0.0, -0.0, 1e21, 5e-324, 0.1, f64::NAN, 1.0, -2.5e-7],
            bytes: b"\x00\xff",
        }));
        same(&vec![Ext::Unit, Ext::New(1), Ext::Tup(2, "t".into())]);
        same(&Ext::Str { y: true, x: () });
        same(&json!({"b": [1, {"d": null, "c": "\u{7f}\u{2028}"}], "a": -17, "": 1.5}));
        same(&(1u8, "two", [3i64]));
        #[derive(Serialize)]
        struct Clash {
            pid: u32,
            #[serde(flatten)]
            body: Value,
        }
        same(&Clash {
            pid: 1,
            body: json!({"pid": 2, "a": 3}),
        });
    }

    #[test]
    fn top_level_objects_keep_member_positions_for_splicing() {
        for v in [
            json!({}),
            json!({"a": 1}),
            json!({"z": 1}),
            json!({"hash_prev": "x", "seq": 1, "type": "exec"}),
            json!({"hash_prev": "x", "hash_q": 2, "zz": [1, {"b": 1, "a": 2}]}),
            json!({"\u{e000}": 1, "\u{1f600}": 2, "hash_sel": 3}),
        ] {
            let mut o = CanonObject::of(&v).unwrap();
            assert_eq!(o.bytes(), &via_value(&v)[..]);
            o.insert_u64("seq0", 7);
            o.insert_str("hash_self", "h\"1");
            let mut with = v.as_object().unwrap().clone();
            with.insert("seq0".into(), json!(7));
            with.insert("hash_self".into(), json!("h\"1"));
            assert_eq!(
                String::from_utf8(o.bytes().to_vec()).unwrap(),
                String::from_utf8(via_value(&Value::Object(with))).unwrap(),
                "{v}"
            );
            assert_eq!(o.get_str("hash_self").as_deref(), Some("h\"1"));
        }
    }

    /// Every recorded observation of the detect fixtures (real runs) serialises identically.
    #[test]
    fn equals_the_value_path_on_recorded_records() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../detect/tests/data");
        let mut n = 0;
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                    continue;
                }
                for line in std::fs::read_to_string(&p).unwrap_or_default().lines() {
                    if let Ok(r) = serde_json::from_str::<proctor_model::Record>(line) {
                        same(&r);
                        n += 1;
                    }
                }
            }
        }
        assert!(n > 1000, "only {n} records");
    }

    #[test]
    fn only_objects_make_a_top_level_record() {
        assert!(CanonObject::of(&json!([1])).is_err());
        assert!(CanonObject::of(&Ext::Str { y: true, x: () }).is_err());
        assert!(CanonObject::of(&Ext::New(1)).is_err());
        assert!(CanonObject::of(&Some(json!({"a": 1}))).is_ok());
    }
}
