//! The pure encoding: layouts nft uses (checked byte for byte against nft's own messages in
//! `tests/encoding.rs`), and the splitting of big element lists.

use super::*;
use crate::nla::{messages, Attrs};

fn ip(a: u8, b: u8, c: u8, d: u8) -> Value {
    Value::Ipv4(Ipv4Addr::new(a, b, c, d))
}

#[test]
fn values_are_laid_out_as_nft_does() {
    let cases: &[(&[Value], &[u8])] = &[
        (&[ip(10, 96, 0, 10)], &[10, 96, 0, 10]),
        (&[Value::Proto(6)], &[6, 0, 0, 0]),
        (&[Value::Port(80)], &[0, 80, 0, 0]),
        (&[ip(10, 96, 0, 10), Value::Proto(6), Value::Port(80)], &[10, 96, 0, 10, 6, 0, 0, 0, 0, 80, 0, 0]),
    ];
    for (values, want) in cases {
        assert_eq!(key_bytes(values), *want, "{values:?}");
    }
    assert_eq!(key_bytes(&[Value::U32(1)]), 1u32.to_ne_bytes());
    assert_eq!(value_bytes(&Value::Port(53)), [0, 53]);
    assert_eq!(value_bytes(&Value::Proto(17)), [17]);
}

#[test]
fn set_types_and_lengths() {
    use DataType::*;
    let cases: &[(&[DataType], u32, u32)] = &[
        (&[Ipv4Addr], 7, 4),
        (&[InetProto], 12, 1),
        (&[InetService], 13, 2),
        (&[Mark], 19, 4),
        (&[Ipv4Addr, InetProto, InetService], (7 << 12) | (12 << 6) | 13, 12),
        (&[Ipv4Addr, InetProto, InetService, Integer32], 0x001c_c344, 16),
        (&[Ipv4Addr, InetService], 0x1cd, 8),
    ];
    for (types, id, len) in cases {
        let (got_id, got_len, _) = type_of(types);
        assert_eq!((got_id, got_len), (*id, *len), "{types:?}");
    }
}

#[test]
fn encode_numbers_messages_between_begin_and_end() {
    let mut b = Batch::new(Family::Inet);
    assert!(b.is_empty());
    b.add_table("t");
    b.add_chain("t", "c", None);
    b.delete_table("t");
    assert_eq!(b.message_count(), 3);
    let bytes = b.encode(u32::MAX - 1);
    assert_eq!(bytes.len(), b.encoded_len());
    let msgs: Vec<_> = messages(&bytes).map(|m| (m.kind, m.seq, m.payload[0])).collect();
    assert_eq!(
        msgs,
        [(0x10, u32::MAX - 1, 0), (0x0a00, u32::MAX, 1), (0x0a03, 0, 1), (0x0a02, 1, 1), (0x11, 2, 0)],
        "sequence numbers wrap; messages carry NFPROTO_INET"
    );
    assert_eq!(b.operation(2), Some("delete table t"));
}

#[test]
fn big_element_lists_are_split_below_the_attribute_limit() {
    let set = SetSpec {
        name: "m".into(),
        key: vec![DataType::Ipv4Addr, DataType::InetProto, DataType::InetService],
        data: Some(SetData::Verdict),
        timeout: None,
        dynamic: false,
    };
    let n = 20_000u32;
    let elements: Vec<Element> = (0..n)
        .map(|i| Element {
            key: vec![Value::Ipv4(Ipv4Addr::from(i)), Value::Proto(17), Value::Port(53)],
            data: Some(ElementData::Verdict(Verdict::Goto(format!("chain-{}", i % 7)))),
        })
        .collect();
    let mut b = Batch::new(Family::Ipv4);
    b.add_set("t", &set);
    b.add_elements("t", &set, &elements);
    assert!(b.message_count() > 10, "{} messages", b.message_count());

    let bytes = b.encode(0);
    let mut seen = 0u32;
    for msg in messages(&bytes).filter(|m| m.kind == 0x0a00 | NFT_MSG_NEWSETELEM) {
        let attrs = Attrs::new(&msg.payload[4..]);
        assert_eq!(
            attrs.clone().get(NFTA_SET_ELEM_LIST_SET_ID).and_then(|a| a.payload.try_into().ok()),
            Some([0, 0, 0, 1])
        );
        let list = attrs.get(NFTA_SET_ELEM_LIST_ELEMENTS).expect("an element list");
        assert!(list.payload.len() + 4 <= MAX_ELEMENT_LIST + 512);
        for (i, element) in list.nested().enumerate() {
            assert_eq!(usize::from(element.kind), i + 1, "elements are numbered from 1 in each message");
            let key = element.nested().get(NFTA_SET_ELEM_KEY).expect("a key");
            let value = key.nested().get(NFTA_DATA_VALUE).expect("a value");
            assert_eq!(value.payload, key_bytes(&elements[seen as usize].key));
            let data = element.nested().get(NFTA_SET_ELEM_DATA).expect("data");
            let verdict = data.nested().get(NFTA_DATA_VERDICT).expect("a verdict");
            let chain = verdict.nested().get(2).expect("a chain");
            assert_eq!(chain.payload, format!("chain-{}\0", seen % 7).as_bytes());
            seen += 1;
        }
    }
    assert_eq!(seen, n, "every element once, in order");
}

#[test]
fn deletions_carry_keys_only() {
    let set = SetSpec {
        name: "m".into(),
        key: vec![DataType::InetService],
        data: Some(SetData::Verdict),
        timeout: None,
        dynamic: false,
    };
    let mut b = Batch::new(Family::Ipv4);
    b.delete_elements(
        "t",
        &set,
        &[Element { key: vec![Value::Port(80)], data: Some(ElementData::Verdict(Verdict::Drop)) }],
    );
    b.delete_elements("t", &set, &[]);
    assert_eq!(b.message_count(), 1);
    let bytes = b.encode(0);
    let msg = messages(&bytes).nth(1).expect("the message");
    assert_eq!(msg.kind, 0x0a00 | NFT_MSG_DELSETELEM);
    let attrs = Attrs::new(&msg.payload[4..]);
    assert!(attrs.clone().get(NFTA_SET_ELEM_LIST_SET_ID).is_none(), "the set was not created in this batch");
    let list = attrs.get(NFTA_SET_ELEM_LIST_ELEMENTS).expect("an element list");
    let element = list.nested().next().expect("one element");
    let kinds: Vec<u16> = element.nested().map(|a| a.kind).collect();
    assert_eq!(kinds, [NFTA_SET_ELEM_KEY]);
    let key = element.nested().get(NFTA_SET_ELEM_KEY).expect("a key");
    assert_eq!(key.nested().get(NFTA_DATA_VALUE).expect("a value").payload, [0, 80], "a single field is not padded");
}
