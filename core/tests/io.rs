//! The safetensors reader through its public API: round trips of files written here (with
//! serde_json for the header, as the reference writer does), one test per validation rule,
//! the reference Python writer's files, and properties — arbitrary and mutated input never
//! panics, valid random files read back exactly, and the JSON scanner agrees with serde_json.

use std::fmt::Write as _;
use std::path::PathBuf;

use keel_core::io::{Dtype, SafeTensors, MAX_HEADER_LEN, MAX_JSON_DEPTH, MAX_METADATA, MAX_RANK};
use keel_core::Error;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

type St<'a> = SafeTensors<'a, 16>;

/// A tensor to write: name, dtype name, shape, raw bytes.
#[derive(Clone, Debug)]
struct T {
    name: String,
    dtype: String,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

fn t(name: &str, dtype: &str, shape: &[usize], bytes: Vec<u8>) -> T {
    T {
        name: name.into(),
        dtype: dtype.into(),
        shape: shape.into(),
        bytes,
    }
}

fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Writes a valid file: tensors packed in order, header padded with spaces to 8 bytes.
fn write(tensors: &[T], metadata: Option<&[(&str, &str)]>) -> Vec<u8> {
    let mut header = Map::new();
    if let Some(m) = metadata {
        let m: Map<String, Value> = m
            .iter()
            .map(|(k, v)| (k.to_string(), Value::from(*v)))
            .collect();
        header.insert("__metadata__".into(), Value::Object(m));
    }
    let mut data = vec![];
    for t in tensors {
        let begin = data.len();
        data.extend_from_slice(&t.bytes);
        header.insert(
            t.name.clone(),
            json!({"dtype": t.dtype, "shape": t.shape, "data_offsets": [begin, data.len()]}),
        );
    }
    let mut text = Value::Object(header).to_string();
    while !text.len().is_multiple_of(8) {
        text.push(' ');
    }
    raw(&text, &data)
}

/// A file from a literal header text and data section.
fn raw(header: &str, data: &[u8]) -> Vec<u8> {
    raw_bytes(header.as_bytes(), data)
}

fn raw_bytes(header: &[u8], data: &[u8]) -> Vec<u8> {
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header);
    file.extend_from_slice(data);
    file
}

fn err(bytes: &[u8]) -> Error {
    St::parse(bytes).unwrap_err()
}

/// One entry `"name": {dtype, shape, offsets}` for hand-written headers.
fn entry(name: &str, dtype: &str, shape: &str, begin: u64, end: u64) -> String {
    format!(r#""{name}":{{"dtype":"{dtype}","shape":{shape},"data_offsets":[{begin},{end}]}}"#)
}

// ---------------------------------------------------------------------------------------------
// Round trips.

#[test]
fn round_trip_of_mixed_dtypes_and_shapes() {
    let w: Vec<f32> = (0..6).map(|i| i as f32 * 0.5 - 1.0).collect();
    let d: Vec<f64> = vec![1e-300, -2.5, f64::MAX];
    let tensors = [
        t("w", "F32", &[2, 3], f32s(&w)),
        t(
            "d",
            "F64",
            &[3],
            d.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
        t(
            "i",
            "I32",
            &[1, 1, 2, 1],
            vec![1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff],
        ),
        t("s", "F32", &[], f32s(&[7.0])),
        t("empty", "F64", &[0, 4], vec![]),
        t("b", "BF16", &[2], vec![0x80, 0x3f, 0, 0x40]),
    ];
    let file = write(&tensors, Some(&[("keel.kind", "mlp")]));
    let st = St::parse(&file).unwrap();
    assert_eq!(st.len(), 6);
    let v = st.tensor("w").unwrap();
    assert_eq!(
        (v.dtype(), v.shape(), v.rank(), v.len()),
        (Dtype::F32, &[2, 3][..], 2, 6)
    );
    for (i, &x) in w.iter().enumerate() {
        assert_eq!(v.get_f32(i).unwrap(), x);
        assert_eq!(v.get_f64(i).unwrap(), f64::from(x));
        assert_eq!(v.get::<f64>(i).unwrap(), f64::from(x));
    }
    let v = st.tensor("d").unwrap();
    for (i, &x) in d.iter().enumerate() {
        assert_eq!(v.get_f64(i).unwrap().to_bits(), x.to_bits());
        assert_eq!(v.get_f32(i).unwrap(), x as f32);
    }
    let v = st.tensor("i").unwrap();
    assert_eq!(
        (v.dtype(), v.shape(), v.len()),
        (Dtype::I32, &[1, 1, 2, 1][..], 2)
    );
    assert_eq!(v.element_bytes(1).unwrap(), &[0xff; 4]);
    assert!(matches!(
        v.get_f32(0),
        Err(Error::UnsupportedDtype { dtype: Dtype::I32 })
    ));
    let v = st.tensor("s").unwrap();
    assert_eq!((v.rank(), v.shape(), v.len()), (0, &[][..], 1));
    assert_eq!(v.get_f32(0).unwrap(), 7.0);
    let v = st.tensor("empty").unwrap();
    assert!(v.is_empty());
    assert_eq!(v.shape(), &[0, 4]);
    assert!(matches!(
        v.get_f64(0),
        Err(Error::IndexOutOfRange {
            what: "tensor element",
            index: 0,
            len: 0
        })
    ));
    assert_eq!(st.tensor("b").unwrap().dtype(), Dtype::BF16);
    assert!(matches!(
        st.tensor("w").unwrap().get_f32(6),
        Err(Error::IndexOutOfRange {
            index: 6,
            len: 6,
            ..
        })
    ));
    assert!(matches!(
        st.tensor("nope"),
        Err(Error::TensorNotFound {
            role: "tensor",
            layer: None
        })
    ));
    let names: Vec<String> = st.tensors().map(|(n, _)| n.to_string()).collect();
    assert_eq!(names.len(), 6);
    assert!(st.metadata("keel.kind").unwrap() == "mlp");
    assert!(st.metadata("other").is_none());
}

#[test]
fn metadata_strings_with_escapes_read_back() {
    let config =
        r#"{"sizes":[64,128,10],"activation":"relu","note":"tab\there \"quoted\" \\ é 😀"}"#;
    let file = write(
        &[],
        Some(&[
            ("keel.kind", "mlp"),
            ("keel.config", config),
            ("ctl", "\u{1}\n"),
        ]),
    );
    let st = St::parse(&file).unwrap();
    let c = st.metadata("keel.config").unwrap();
    assert!(c.as_str().is_none());
    assert!(c == config);
    assert_eq!(c.chars().collect::<String>(), config);
    assert_eq!(String::from_utf8(c.bytes().collect()).unwrap(), config);
    assert_eq!(c.to_string(), config);
    assert!(st.metadata("ctl").unwrap() == "\u{1}\n");
    let entries: Vec<(String, String)> = st
        .metadata_entries()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(entries.len(), 3);

    // ASCII-only writers (Python's json.dumps) escape everything else as \uXXXX.
    let header = r#"{"__metadata__":{"k\u00e9y":"\u00e9\ud83d\ude00\/"},"a\u0062":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    let file = raw(header, &f32s(&[3.0]));
    let st = St::parse(&file).unwrap();
    assert!(st.metadata("kéy").unwrap() == "é😀/");
    assert_eq!(st.tensor("ab").unwrap().get_f32(0).unwrap(), 3.0);
}

#[test]
fn minimal_and_padded_files_parse() {
    assert!(St::parse(&raw("{}", &[])).unwrap().is_empty());
    assert!(St::parse(&raw("{}        ", &[])).unwrap().is_empty());
    assert!(St::parse(&raw("{}\n\t \r", &[])).unwrap().is_empty());
    let file = raw(r#"{"__metadata__":null}"#, &[]);
    let st = St::parse(&file).unwrap();
    assert!(st.metadata("x").is_none());
    assert_eq!(st.metadata_entries().count(), 0);
    // Whitespace between tokens.
    let h =
        " {\n \"a\" : { \"shape\" : [ 1 ] , \"data_offsets\" : [ 0 , 4 ] , \"dtype\" : \"F32\" } }";
    assert!(St::parse(&raw(&h[1..], &[0; 4])).is_ok());
}

#[test]
fn files_from_the_reference_python_writer_parse() {
    let dir: PathBuf = [env!("CARGO_MANIFEST_DIR"), "..", "fixtures", "nn"]
        .iter()
        .collect();
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "safetensors") {
            let bytes = std::fs::read(&path).unwrap();
            let st = St::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(st.metadata("keel.kind").unwrap() == "mlp");
            for (_, v) in st.tensors() {
                for i in 0..v.len() {
                    assert!(v.get_f64(i).unwrap().is_finite());
                }
            }
            n += 1;
        }
    }
    assert!(n >= 7);
}

// ---------------------------------------------------------------------------------------------
// One test per validation rule.

#[test]
fn rule_truncated() {
    assert_eq!(err(&[]), Error::Truncated { needed: 8, len: 0 });
    assert_eq!(
        err(&[2, 0, 0, 0, 0, 0, 0]),
        Error::Truncated { needed: 8, len: 7 }
    );
    let mut f = raw("{}", &[]);
    f.pop();
    assert_eq!(err(&f), Error::Truncated { needed: 10, len: 9 });
}

#[test]
fn rule_header_too_large() {
    let max = MAX_HEADER_LEN as u64;
    for n in [max + 1, u64::MAX] {
        let mut f = n.to_le_bytes().to_vec();
        f.extend_from_slice(b"{}");
        assert_eq!(err(&f), Error::HeaderTooLarge { len: n, max });
    }
    // At the cap it is only truncated.
    let f = max.to_le_bytes();
    assert!(matches!(err(&f), Error::Truncated { .. }));
}

#[test]
fn rule_invalid_json() {
    let reason = |h: &[u8]| match err(&raw_bytes(h, &[])) {
        Error::InvalidJson { offset, reason } => (offset, reason),
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(h)),
    };
    assert_eq!(reason(b"{\"a\xff\":1}"), (3, "invalid UTF-8"));
    assert_eq!(reason(b""), (0, "unexpected end of input"));
    assert_eq!(reason(b"{"), (1, "expected a key string"));
    assert_eq!(
        reason(b"{}x"),
        (2, "trailing characters after the JSON value")
    );
    assert_eq!(
        reason(b"{} {}"),
        (3, "trailing characters after the JSON value")
    );
    assert_eq!(reason(b"{\"a\":01}").1, "leading zero in number");
    assert_eq!(reason(b"{\"a\":\"\\q\"}"), (6, "invalid escape"));
    assert_eq!(
        reason(b"{\"a\":\"\\ud800\"}").1,
        "unpaired surrogate in \\u escape"
    );
    assert_eq!(
        reason(b"{\"a\":\"x\ty\"}"),
        (7, "control character in string")
    );
    assert_eq!(reason(b"{\"a\":[1,]}").1, "expected a value");
    assert_eq!(reason(b"{\"a\" 1}").1, "expected `:`");
    assert_eq!(reason(b"{\"a\":1,}").1, "expected a key string");
    assert_eq!(reason(b"{\"a\":tru}").1, "invalid literal");
    let deep = format!(
        "{{\"a\":{}{}}}",
        "[".repeat(MAX_JSON_DEPTH),
        "]".repeat(MAX_JSON_DEPTH)
    );
    assert_eq!(reason(deep.as_bytes()).1, "nesting too deep");
    let ok = format!(
        "{{\"a\":{}{}}}",
        "[".repeat(MAX_JSON_DEPTH - 1),
        "]".repeat(MAX_JSON_DEPTH - 1)
    );
    assert!(!matches!(err(&raw(&ok, &[])), Error::InvalidJson { .. }));
    // A million open brackets: rejected at the cap, without recursion.
    assert_eq!(reason(&vec![b'['; 1 << 20]).1, "nesting too deep");
}

#[test]
fn rule_invalid_header() {
    let what = |h: &str| match err(&raw(h, &[0; 4])) {
        Error::InvalidHeader { what, .. } => what,
        other => panic!("{h}: {other:?}"),
    };
    let start = "the header must be a JSON object starting at its first byte";
    assert_eq!(what("[]"), start);
    assert_eq!(what(" {}"), start);
    assert_eq!(what("\"x\""), start);
    assert_eq!(what(r#"{"a":[0,4]}"#), "a tensor entry must be an object");
    assert_eq!(
        what(r#"{"a":{"dtype":32,"shape":[1],"data_offsets":[0,4]}}"#),
        "`dtype` must be a string"
    );
    let shape = "`shape` must be an array of non-negative integers";
    for s in [
        "1",
        "[-1]",
        "[1.0]",
        "[1e0]",
        "[\"1\"]",
        "[18446744073709551616]",
    ] {
        assert_eq!(
            what(&format!(
                r#"{{"a":{{"dtype":"F32","shape":{s},"data_offsets":[0,4]}}}}"#
            )),
            shape,
            "{s}"
        );
    }
    let offsets = "`data_offsets` must be two non-negative integers";
    for o in ["[0]", "[0,4,4]", "[0,-4]", "{}", "[0,4.5]"] {
        assert_eq!(
            what(&format!(
                r#"{{"a":{{"dtype":"F32","shape":[1],"data_offsets":{o}}}}}"#
            )),
            offsets,
            "{o}"
        );
    }
    assert_eq!(
        what(r#"{"a":{"shape":[1],"data_offsets":[0,4]}}"#),
        "a tensor entry lacks `dtype`"
    );
    assert_eq!(
        what(r#"{"a":{"dtype":"F32","data_offsets":[0,4]}}"#),
        "a tensor entry lacks `shape`"
    );
    assert_eq!(
        what(r#"{"a":{"dtype":"F32","shape":[1]}}"#),
        "a tensor entry lacks `data_offsets`"
    );
    assert_eq!(
        what(r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1}}"#),
        "unknown field in a tensor entry"
    );
    let meta = "`__metadata__` must be an object of strings";
    assert_eq!(what(r#"{"__metadata__":["a"]}"#), meta);
    assert_eq!(what(r#"{"__metadata__":{"a":1}}"#), meta);
    assert_eq!(what(r#"{"__metadata__":{"a":null}}"#), meta);
}

#[test]
fn rule_duplicate_key() {
    let a = entry("a", "F32", "[1]", 0, 4);
    let b = entry("a", "F32", "[1]", 4, 8);
    assert!(matches!(
        err(&raw(&format!("{{{a},{b}}}"), &[0; 8])),
        Error::DuplicateKey { .. }
    ));
    // Equal after unescaping.
    let b = entry("\\u0061", "F32", "[1]", 4, 8);
    assert!(matches!(
        err(&raw(&format!("{{{a},{b}}}"), &[0; 8])),
        Error::DuplicateKey { .. }
    ));
    let m = r#""__metadata__":{"k":"v"}"#;
    let h = format!("{{{m},{a},{m}}}");
    assert!(
        matches!(err(&raw(&h, &[0; 4])), Error::DuplicateKey { offset } if offset == h.rfind("__metadata__").unwrap() - 1)
    );
    let h = r#"{"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    assert_eq!(err(&raw(h, &[0; 4])), Error::DuplicateKey { offset: 20 });
    for dup in [
        r#""shape":[1],"shape":[1]"#,
        r#""shape":[1],"data_offsets":[0,4],"data_offsets":[0,4]"#,
    ] {
        let h = format!(r#"{{"a":{{"dtype":"F32",{dup},"data_offsets":[0,4]}}}}"#);
        assert!(
            matches!(err(&raw(&h, &[0; 4])), Error::DuplicateKey { .. }),
            "{h}"
        );
    }
    let h = r#"{"__metadata__":{"k":"v","k":"w"}}"#;
    assert_eq!(err(&raw(h, &[])), Error::DuplicateKey { offset: 25 });
}

#[test]
fn rule_unknown_dtype() {
    for d in [
        "f32",
        "F4",
        "F8_E8M0",
        "C64",
        "",
        "F32 ",
        "\\u0046\\u0033\\u0033",
    ] {
        let h = format!(
            "{{{},{}}}",
            entry("a", "F32", "[1]", 0, 4),
            entry("b", d, "[1]", 4, 8)
        );
        assert_eq!(
            err(&raw(&h, &[0; 8])),
            Error::UnknownDtype { tensor: 1 },
            "{d}"
        );
    }
    // Escapes are decoded before the comparison.
    let h = format!("{{{}}}", entry("b", "\\u0046\\u0033\\u0032", "[1]", 0, 4));
    assert_eq!(
        St::parse(&raw(&h, &[0; 4]))
            .unwrap()
            .tensor("b")
            .unwrap()
            .dtype(),
        Dtype::F32
    );
    for d in [
        "BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16", "I32", "U32", "F32",
        "I64", "U64", "F64",
    ] {
        let dtype = Dtype::from_name(d).unwrap();
        assert_eq!(dtype.name(), d);
        let n = dtype.size() as u64;
        let h = format!("{{{}}}", entry("a", d, "[3]", 0, 3 * n));
        assert_eq!(
            St::parse(&raw(&h, &vec![0; 3 * n as usize]))
                .unwrap()
                .tensor("a")
                .unwrap()
                .dtype(),
            dtype
        );
    }
}

#[test]
fn rule_rank_too_large() {
    let h = format!("{{{}}}", entry("a", "U8", "[1,1,1,1,1]", 0, 1));
    assert_eq!(
        err(&raw(&h, &[0])),
        Error::RankTooLarge {
            tensor: 0,
            rank: 5,
            max: MAX_RANK
        }
    );
    let h = format!("{{{}}}", entry("a", "U8", "[1,1,1,1]", 0, 1));
    assert!(St::parse(&raw(&h, &[0])).is_ok());
}

#[test]
fn rule_shape_overflow() {
    let big = 1u64 << 32;
    let h = format!(
        "{{{}}}",
        entry("a", "U8", &format!("[{big},{big},{big}]"), 0, 0)
    );
    assert_eq!(err(&raw(&h, &[])), Error::ShapeOverflow { tensor: 0 });
    // Elements fit, bytes do not.
    let h = format!(
        "{{{}}}",
        entry("a", "F64", &format!("[{}]", u64::MAX / 4), 0, 0)
    );
    assert_eq!(err(&raw(&h, &[])), Error::ShapeOverflow { tensor: 0 });
    // A zero axis makes the tensor empty, however large the others.
    let h = format!(
        "{{{}}}",
        entry("a", "F64", &format!("[{},{},0]", u64::MAX, u64::MAX), 0, 0)
    );
    assert_eq!(
        St::parse(&raw(&h, &[])).unwrap().tensor("a").unwrap().len(),
        0
    );
}

#[test]
fn rule_invalid_offsets() {
    let h = format!("{{{}}}", entry("a", "U8", "[0]", 4, 0));
    assert_eq!(
        err(&raw(&h, &[0; 4])),
        Error::InvalidOffsets {
            tensor: 0,
            begin: 4,
            end: 0
        }
    );
}

#[test]
fn rule_offsets_out_of_bounds() {
    let h = format!(
        "{{{},{}}}",
        entry("a", "U8", "[4]", 0, 4),
        entry("b", "U8", "[4]", 4, 8)
    );
    assert_eq!(
        err(&raw(&h, &[0; 7])),
        Error::OffsetsOutOfBounds {
            tensor: 1,
            end: 8,
            len: 7
        }
    );
    let h = format!("{{{}}}", entry("a", "U8", "[0]", u64::MAX, u64::MAX));
    assert_eq!(
        err(&raw(&h, &[])),
        Error::OffsetsOutOfBounds {
            tensor: 0,
            end: usize::MAX,
            len: 0
        }
    );
}

#[test]
fn rule_data_length_mismatch() {
    let h = format!("{{{}}}", entry("a", "F32", "[2,2]", 0, 12));
    assert_eq!(
        err(&raw(&h, &[0; 12])),
        Error::DataLengthMismatch {
            tensor: 0,
            expected: 16,
            got: 12
        }
    );
}

#[test]
fn rule_overlapping_tensors() {
    let h = format!(
        "{{{},{},{}}}",
        entry("a", "U8", "[4]", 0, 4),
        entry("b", "U8", "[2]", 4, 6),
        entry("c", "U8", "[4]", 2, 6)
    );
    assert_eq!(
        err(&raw(&h, &[0; 6])),
        Error::OverlappingTensors {
            first: 0,
            second: 2
        }
    );
    // An empty tensor may sit at a boundary, but not inside another tensor's bytes (as the
    // reference implementation's contiguity check).
    let h = format!(
        "{{{},{}}}",
        entry("a", "U8", "[4]", 0, 4),
        entry("e", "U8", "[0]", 2, 2)
    );
    assert_eq!(
        err(&raw(&h, &[0; 4])),
        Error::OverlappingTensors {
            first: 0,
            second: 1
        }
    );
    for at in [0, 4] {
        let h = format!(
            "{{{},{}}}",
            entry("a", "U8", "[4]", 0, 4),
            entry("e", "U8", "[0]", at, at)
        );
        assert!(St::parse(&raw(&h, &[0; 4])).is_ok());
    }
}

#[test]
fn rule_data_not_covered() {
    // A gap.
    let h = format!(
        "{{{},{}}}",
        entry("a", "U8", "[2]", 0, 2),
        entry("b", "U8", "[2]", 4, 6)
    );
    assert_eq!(
        err(&raw(&h, &[0; 6])),
        Error::DataNotCovered { covered: 4, len: 6 }
    );
    // Trailing bytes.
    let h = format!("{{{}}}", entry("a", "U8", "[2]", 0, 2));
    assert_eq!(
        err(&raw(&h, &[0; 3])),
        Error::DataNotCovered { covered: 2, len: 3 }
    );
    assert_eq!(
        err(&raw("{}", &[0])),
        Error::DataNotCovered { covered: 0, len: 1 }
    );
    // Out of order is fine.
    let h = format!(
        "{{{},{}}}",
        entry("b", "U8", "[2]", 2, 4),
        entry("a", "U8", "[2]", 0, 2)
    );
    assert!(St::parse(&raw(&h, &[0; 4])).is_ok());
}

#[test]
fn rule_capacity_exceeded() {
    let tensors: Vec<T> = (0..5)
        .map(|i| t(&format!("t{i}"), "U8", &[1], vec![i]))
        .collect();
    let file = write(&tensors, None);
    assert_eq!(SafeTensors::<'_, 5>::parse(&file).unwrap().len(), 5);
    assert_eq!(
        SafeTensors::<'_, 4>::parse(&file).unwrap_err(),
        Error::CapacityExceeded {
            what: "tensors",
            capacity: 4
        }
    );
    assert!(matches!(
        SafeTensors::<'_, 0>::parse(&file),
        Err(Error::CapacityExceeded { .. })
    ));
    assert!(SafeTensors::<'_, 0>::parse(&raw("{}", &[])).is_ok());

    let keys: Vec<String> = (0..=MAX_METADATA).map(|i| format!("k{i}")).collect();
    let meta: Vec<(&str, &str)> = keys.iter().map(|k| (k.as_str(), "v")).collect();
    assert!(St::parse(&write(&[], Some(&meta[..MAX_METADATA]))).is_ok());
    assert_eq!(
        err(&write(&[], Some(&meta))),
        Error::CapacityExceeded {
            what: "metadata entries",
            capacity: MAX_METADATA
        }
    );
}

#[test]
fn errors_name_their_kind_and_display() {
    let cases = [
        (Error::Truncated { needed: 8, len: 0 }, "Truncated"),
        (
            Error::InvalidJson {
                offset: 3,
                reason: "x",
            },
            "InvalidJson",
        ),
        (
            Error::DataNotCovered { covered: 1, len: 2 },
            "DataNotCovered",
        ),
        (
            Error::UnsupportedDtype { dtype: Dtype::BF16 },
            "UnsupportedDtype",
        ),
        (
            Error::TensorNotFound {
                role: "bias",
                layer: Some(2),
            },
            "TensorNotFound",
        ),
    ];
    for (e, kind) in cases {
        assert_eq!(e.kind(), kind);
        assert!(!e.to_string().is_empty());
    }
    assert_eq!(
        Error::TensorNotFound {
            role: "bias",
            layer: Some(2)
        }
        .to_string(),
        "tensor `layer2.bias` not found"
    );
}

// ---------------------------------------------------------------------------------------------
// Properties.

/// Reads every element of every tensor, as a consumer would; must not panic.
fn touch_all(st: &St<'_>) {
    for (name, v) in st.tensors() {
        let _ = name.chars().count();
        assert_eq!(v.len() * v.dtype().size(), v.data().len());
        assert_eq!(v.shape().iter().product::<usize>(), v.len());
        for i in 0..v.len() {
            let _ = v.element_bytes(i).unwrap();
            let _ = v.get_f64(i);
        }
        assert!(v.get_f64(v.len()).is_err());
    }
    for (k, v) in st.metadata_entries() {
        let _ = (k.to_string(), v.to_string());
    }
}

fn dtype_strategy() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "F32", "F64", "U8", "I16", "BF16", "I32", "U64", "BOOL",
    ])
}

fn tensor_strategy() -> impl Strategy<Value = T> {
    (
        "[a-z0-9._]{1,12}",
        dtype_strategy(),
        prop::collection::vec(0..4usize, 0..=MAX_RANK),
    )
        .prop_flat_map(|(name, dtype, shape)| {
            let n = shape.iter().product::<usize>() * Dtype::from_name(dtype).unwrap().size();
            prop::collection::vec(any::<u8>(), n).prop_map(move |bytes| T {
                name: name.clone(),
                dtype: dtype.into(),
                shape: shape.clone(),
                bytes,
            })
        })
}

/// A valid file: distinct names, random metadata (any Unicode, control characters included).
fn file_strategy() -> impl Strategy<Value = (Vec<T>, Vec<(String, String)>)> {
    (
        prop::collection::vec(tensor_strategy(), 0..8),
        prop::collection::btree_map("\\PC{0,8}", any::<String>(), 0..4),
    )
        .prop_map(|(mut ts, meta)| {
            let mut seen = std::collections::HashSet::new();
            ts.retain(|t| t.name != "__metadata__" && seen.insert(t.name.clone()));
            (ts, meta.into_iter().collect())
        })
}

fn write_owned(ts: &[T], meta: &[(String, String)]) -> Vec<u8> {
    let m: Vec<(&str, &str)> = meta.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    write(ts, Some(&m))
}

/// JSON text that is valid more often than not: serde_json values, then maybe one edit.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        "\\PC{0,6}".prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 48, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("\\PC{0,4}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Escapes like Python's `json.dumps` (ASCII only: `\uXXXX`, surrogate pairs, escaped `/`).
fn ascii_json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            '\n' => out.push_str("\\n"),
            ' '..='~' => out.push(c),
            _ => {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    write!(out, "\\u{u:04X}").unwrap();
                }
            }
        }
    }
    out.push('"');
    out
}

const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    " ",
    "\"a\"",
    "\"dtype\"",
    "\"F32\"",
    "\"U8\"",
    "\"shape\"",
    "\"data_offsets\"",
    "\"__metadata__\"",
    "0",
    "1",
    "4",
    "8",
    "-1",
    "1.5",
    "2e3",
    "null",
    "true",
    "\"\\u00e9\"",
    "\"\\ud800\"",
    "\"\\\"\"",
    "\"",
    "\\",
    "\n",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// (a) Arbitrary bytes never panic.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(st) = St::parse(&bytes) {
            touch_all(&st);
        }
        // The same bytes as a header behind a correct length prefix get past the prefix.
        let file = raw_bytes(&bytes, &[]);
        if let Ok(st) = St::parse(&file) {
            touch_all(&st);
        }
    }

    /// (a) Token soup — mostly near-valid headers — never panics.
    #[test]
    fn token_soup_never_panics(
        tokens in prop::collection::vec(prop::sample::select(TOKENS), 0..60),
        data in prop::collection::vec(any::<u8>(), 0..16),
    ) {
        let header: String = tokens.concat();
        if let Ok(st) = St::parse(&raw(&header, &data)) {
            touch_all(&st);
        }
    }

    /// (b) Mutated valid files never panic: they parse (and read) or give an error.
    #[test]
    fn mutated_files_never_panic(
        (ts, meta) in file_strategy(),
        cut in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        len_delta in -40i64..40,
        new_len in any::<u64>(),
        shift in (any::<prop::sample::Index>(), -9i64..9),
    ) {
        let file = write_owned(&ts, &meta);
        let check = |bytes: &[u8]| {
            if let Ok(st) = St::parse(bytes) {
                touch_all(&st);
            }
        };
        // Truncated.
        check(&file[..cut.index(file.len() + 1)]);
        // Random bytes replaced.
        let mut m = file.clone();
        for (i, b) in &flips {
            let i = i.index(m.len());
            m[i] ^= b | 1;
        }
        check(&m);
        // Header length changed by a little, or to anything.
        let n = u64::from_le_bytes(file[..8].try_into().unwrap());
        let mut m = file.clone();
        m[..8].copy_from_slice(&n.wrapping_add(len_delta as u64).to_le_bytes());
        check(&m);
        m[..8].copy_from_slice(&new_len.to_le_bytes());
        check(&m);
        // One tensor's offsets shifted (header rewritten, data unchanged).
        if !ts.is_empty() {
            let k = shift.0.index(ts.len());
            let header = std::str::from_utf8(&file[8..8 + n as usize]).unwrap();
            let mut v: Value = serde_json::from_str(header).unwrap();
            let offs = &mut v[&ts[k].name]["data_offsets"];
            let b = offs[0].as_i64().unwrap() + shift.1;
            let e = offs[1].as_i64().unwrap() + shift.1;
            *offs = json!([b.max(0), e.max(0)]);
            let m = raw(&v.to_string(), &file[8 + n as usize..]);
            if shift.1 != 0 && ts[k].bytes.len() as i64 + shift.1.min(0) > 0 {
                prop_assert!(St::parse(&m).is_err());
            }
            check(&m);
        }
    }

    /// (c) Every tensor and metadata entry of a valid random file reads back exactly.
    #[test]
    fn valid_files_read_back_exactly((ts, meta) in file_strategy()) {
        let file = write_owned(&ts, &meta);
        let st = St::parse(&file).unwrap();
        prop_assert_eq!(st.len(), ts.len());
        for t in &ts {
            let v = st.tensor(&t.name).unwrap();
            prop_assert_eq!(v.dtype().name(), t.dtype.as_str());
            prop_assert_eq!(v.shape(), &t.shape[..]);
            prop_assert_eq!(v.data(), &t.bytes[..]);
            let size = v.dtype().size();
            for i in 0..v.len() {
                let bytes = &t.bytes[i * size..(i + 1) * size];
                prop_assert_eq!(v.element_bytes(i).unwrap(), bytes);
                match v.dtype() {
                    Dtype::F32 => prop_assert_eq!(
                        v.get_f32(i).unwrap().to_bits(),
                        f32::from_le_bytes(bytes.try_into().unwrap()).to_bits()
                    ),
                    Dtype::F64 => prop_assert_eq!(
                        v.get_f64(i).unwrap().to_bits(),
                        f64::from_le_bytes(bytes.try_into().unwrap()).to_bits()
                    ),
                    _ => prop_assert!(v.get_f64(i).is_err()),
                }
            }
        }
        for (k, value) in &meta {
            let got = st.metadata(k).unwrap();
            prop_assert!(got == value.as_str());
            prop_assert_eq!(&got.chars().collect::<String>(), value);
        }
        prop_assert_eq!(st.metadata_entries().count(), meta.len());
    }

    /// ASCII-escaped (`\uXXXX`) metadata decodes to the original strings.
    #[test]
    fn ascii_escaped_metadata_decodes(k in "\\PC{0,8}", v in any::<String>()) {
        let header = format!(
            "{{\"__metadata__\":{{{}:{}}}}}",
            ascii_json_string(&k),
            ascii_json_string(&v)
        );
        let file = raw(&header, &[]);
        let st = St::parse(&file).unwrap();
        prop_assert!(st.metadata(&k).unwrap() == v.as_str());
    }

    /// The scanner accepts exactly the JSON serde_json accepts (values shallower than the cap).
    #[test]
    fn json_scanner_agrees_with_serde_json(
        value in json_value(),
        edit in prop::option::of((any::<prop::sample::Index>(), prop::sample::select(TOKENS))),
    ) {
        let mut text = format!("{{\"k\":{value}}}");
        if let Some((at, token)) = edit {
            let mut i = at.index(text.len() + 1);
            while !text.is_char_boundary(i) {
                i -= 1;
            }
            text.insert_str(i, token);
        }
        let serde = serde_json::from_str::<Value>(&text);
        // RFC 8259 lets a parser limit the range of numbers; serde_json rejects those beyond
        // f64, the scanner only checks the grammar (the header's integers are range-checked
        // where they are used).
        prop_assume!(!serde.as_ref().is_err_and(|e| e.to_string().contains("number out of range")));
        let serde_ok = serde.is_ok();
        let file = raw(&text, &[]);
        let ours = St::parse(&file);
        let ours_ok = !matches!(ours, Err(Error::InvalidJson { .. }));
        prop_assert_eq!(ours_ok, serde_ok, "{}: {:?}", text, ours);
    }
}
