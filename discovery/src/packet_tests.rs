use super::*;

const KEY: &str = "b71c71a67e1177ad4e901695e1b4b9ee17ae16c6668d313eac2f96dbcda3f291";

// EIP-8 "RLPx Discovery Protocol" test vectors.
pub(crate) const PING_V4: &str = "e9614ccfd9fc3e74360018522d30e1419a143407ffcce748de3e22116b7e8dc92ff74788c0b6663aaa3d67d641936511c8f8d6ad8698b820a7cf9e1be7155e9a241f556658c55428ec0563514365799a4be2be5a685a80971ddcfa80cb422cdd0101ec04cb847f000001820cfa8215a8d790000000000000000000000000000000018208ae820d058443b9a3550102";
pub(crate) const PING_V555: &str = "577be4349c4dd26768081f58de4c6f375a7a22f3f7adda654d1428637412c3d7fe917cadc56d4e5e7ffae1dbe3efffb9849feb71b262de37977e7c7a44e677295680e9e38ab26bee2fcbae207fba3ff3d74069a50b902a82c9903ed37cc993c50001f83e82022bd79020010db83c4d001500000000abcdef12820cfa8215a8d79020010db885a308d313198a2e037073488208ae82823a8443b9a355c5010203040531b9019afde696e582a78fa8d95ea13ce3297d4afb8ba6433e4154caa5ac6431af1b80ba76023fa4090c408f6b4bc3701562c031041d4702971d102c9ab7fa5eed4cd6bab8f7af956f7d565ee1917084a95398b6a21eac920fe3dd1345ec0a7ef39367ee69ddf092cbfe5b93e5e568ebc491983c09c76d922dc3";
pub(crate) const PONG: &str = "09b2428d83348d27cdf7064ad9024f526cebc19e4958f0fdad87c15eb598dd61d08423e0bf66b2069869e1724125f820d851c136684082774f870e614d95a2855d000f05d1648b2d5945470bc187c2d2216fbe870f43ed0909009882e176a46b0102f846d79020010db885a308d313198a2e037073488208ae82823aa0fbc914b16819237dcd8801d7e53f69e9719adecb3cc0e790c57e91ca4461c9548443b9a355c6010203c2040506a0c969a58f6f9095004c0177a6b47f451530cab38966a25cca5cb58f055542124e";
pub(crate) const FINDNODE: &str = "c7c44041b9f7c7e41934417ebac9a8e1a4c6298f74553f2fcfdcae6ed6fe53163eb3d2b52e39fe91831b8a927bf4fc222c3902202027e5e9eb812195f95d20061ef5cd31d502e47ecb61183f74a504fe04c51e73df81f25c4d506b26db4517490103f84eb840ca634cae0d49acb401d8a4c6b6fe8c55b70d115bf400769cc1400f3258cd31387574077f301b421bc84df7266c44e9e6d569fc56be00812904767bf5ccd1fc7f8443b9a35582999983999999280dc62cc8255c73471e0a61da0c89acdc0e035e260add7fc0c04ad9ebf3919644c91cb247affc82b69bd2ca235c71eab8e49737c937a2c396";
pub(crate) const NEIGHBORS: &str = "c679fc8fe0b8b12f06577f2e802d34f6fa257e6137a995f6f4cbfc9ee50ed3710faf6e66f932c4c8d81d64343f429651328758b47d3dbc02c4042f0fff6946a50f4a49037a72bb550f3a7872363a83e1b9ee6469856c24eb4ef80b7535bcf99c0004f9015bf90150f84d846321163782115c82115db8403155e1427f85f10a5c9a7755877748041af1bcd8d474ec065eb33df57a97babf54bfd2103575fa829115d224c523596b401065a97f74010610fce76382c0bf32f84984010203040101b840312c55512422cf9b8a4097e9a6ad79402e87a15ae909a4bfefa22398f03d20951933beea1e4dfa6f968212385e829f04c2d314fc2d4e255e0d3bc08792b069dbf8599020010db83c4d001500000000abcdef12820d05820d05b84038643200b172dcfef857492156971f0e6aa2c538d8b74010f8e140811d53b98c765dd2d96126051913f44582e8c199ad7c6d6819e9a56483f637feaac9448aacf8599020010db885a308d313198a2e037073488203e78203e8b8408dcab8618c3253b558d459da53bd8fa68935a719aff8b811197101a4b2b47dd2d47295286fc00cc081bb542d760717d1bdd6bec2c37cd72eca367d6dd3b9df738443b9a355010203b525a138aa34383fec3d2719a0";

fn key() -> SecretKey {
    SecretKey::from_byte_array(hex::decode(KEY).unwrap().try_into().unwrap()).unwrap()
}

fn vector(hex_str: &str) -> Packet {
    let p = decode(&hex::decode(hex_str).unwrap()).unwrap();
    assert_eq!(p.node_id, NodeId::from_secret_key(&key()));
    p
}

#[test]
fn eip8_ping_v4() {
    let Message::Ping(ping) = vector(PING_V4).message else {
        panic!("not a ping")
    };
    assert_eq!(
        ping.from,
        Endpoint {
            ip: "127.0.0.1".parse().unwrap(),
            udp: 3322,
            tcp: 5544
        }
    );
    assert_eq!(
        ping.to,
        Endpoint {
            ip: "::1".parse().unwrap(),
            udp: 2222,
            tcp: 3333
        }
    );
    assert_eq!(ping.expiration, 1136239445);
    assert_eq!(ping.enr_seq, Some(1));
}

#[test]
fn eip8_ping_v555() {
    let Message::Ping(ping) = vector(PING_V555).message else {
        panic!("not a ping")
    };
    assert_eq!(
        ping.from.ip,
        "2001:db8:3c4d:15::abcd:ef12".parse::<IpAddr>().unwrap()
    );
    assert_eq!(
        ping.to,
        Endpoint {
            ip: "2001:db8:85a3:8d3:1319:8a2e:370:7348".parse().unwrap(),
            udp: 2222,
            tcp: 33338
        }
    );
    assert_eq!(ping.expiration, 1136239445);
    assert_eq!(
        ping.enr_seq, None,
        "a list in the enr-seq position is ignored"
    );
}

#[test]
fn eip8_pong() {
    let Message::Pong(pong) = vector(PONG).message else {
        panic!("not a pong")
    };
    assert_eq!(pong.to.udp, 2222);
    assert_eq!(
        hex::encode(pong.ping_hash),
        "fbc914b16819237dcd8801d7e53f69e9719adecb3cc0e790c57e91ca4461c954"
    );
    assert_eq!(pong.expiration, 1136239445);
}

#[test]
fn eip8_findnode() {
    let Message::FindNode(f) = vector(FINDNODE).message else {
        panic!("not findnode")
    };
    assert_eq!(hex::encode(&f.target.0[..4]), "ca634cae");
    assert_eq!(f.expiration, 1136239445);
}

#[test]
fn eip8_neighbors() {
    let Message::Neighbors(n) = vector(NEIGHBORS).message else {
        panic!("not neighbors")
    };
    assert_eq!(n.nodes.len(), 4);
    assert_eq!(n.nodes[0].ip, "99.33.22.55".parse::<IpAddr>().unwrap());
    assert_eq!((n.nodes[0].udp, n.nodes[0].tcp), (4444, 4445));
    assert_eq!(n.nodes[1].ip, "1.2.3.4".parse::<IpAddr>().unwrap());
    assert_eq!((n.nodes[1].udp, n.nodes[1].tcp), (1, 1));
    assert_eq!((n.nodes[3].udp, n.nodes[3].tcp), (999, 1000));
    assert_eq!(n.expiration, 1136239445);
}

#[test]
fn roundtrip_all_kinds() {
    let k = key();
    let ep = Endpoint {
        ip: "10.0.0.1".parse().unwrap(),
        udp: 30303,
        tcp: 30303,
    };
    let enr = crate::enr::Builder::new().udp(1).build(3, &k).unwrap();
    let msgs = [
        Message::Ping(Ping {
            from: ep,
            to: ep,
            expiration: 5,
            enr_seq: Some(9),
        }),
        Message::Pong(Pong {
            to: ep,
            ping_hash: [3; 32],
            expiration: 5,
            enr_seq: None,
        }),
        Message::FindNode(FindNode {
            target: NodeId([7; 64]),
            expiration: 5,
        }),
        Message::Neighbors(Neighbors {
            nodes: vec![],
            expiration: 5,
        }),
        Message::EnrRequest(EnrRequest { expiration: 5 }),
        Message::EnrResponse(EnrResponse {
            request_hash: [1; 32],
            enr,
        }),
    ];
    for m in msgs {
        let (bytes, hash) = m.encode(&k);
        let p = decode(&bytes).unwrap();
        assert_eq!(p.hash, hash);
        assert_eq!(p.message, m);
        assert_eq!(p.node_id, NodeId::from_secret_key(&k));
    }
}

#[test]
fn neighbors_split_under_limit() {
    let k = key();
    let nodes: Vec<Node> = (0..40u8)
        .map(|i| Node {
            id: NodeId([i; 64]),
            ip: format!("2001:db8::{i}").parse().unwrap(),
            udp: 65535,
            tcp: 65535,
        })
        .collect();
    let packets = encode_neighbors(&nodes, u64::MAX, &k);
    assert!(packets.len() >= 3);
    let mut got = Vec::new();
    for p in &packets {
        assert!(p.len() <= MAX_PACKET_SIZE, "{}", p.len());
        let Message::Neighbors(n) = decode(p).unwrap().message else {
            panic!()
        };
        got.extend(n.nodes);
    }
    assert_eq!(got, nodes);
}

#[test]
fn hostile_inputs_are_errors() {
    let good = hex::decode(PING_V4).unwrap();
    assert!(matches!(decode(&good[..50]), Err(PacketError::TooShort)));
    assert!(matches!(decode(&vec![0; 1281]), Err(PacketError::TooLarge)));
    let mut bad_hash = good.clone();
    bad_hash[0] ^= 1;
    assert!(matches!(decode(&bad_hash), Err(PacketError::BadHash)));
    // Corrupt the signature's recovery id and fix up the hash.
    let rehash = |mut p: Vec<u8>| {
        let h = keccak256(&p[32..]);
        p[..32].copy_from_slice(&h);
        p
    };
    let mut bad_sig = good.clone();
    bad_sig[96] = 7;
    assert!(matches!(
        decode(&rehash(bad_sig)),
        Err(PacketError::BadSignature)
    ));
    let mut bad_type = good.clone();
    bad_type[97] = 9;
    assert!(matches!(
        decode(&rehash(bad_type)),
        Err(PacketError::UnknownType(9))
    ));
    // Valid signature over garbage data, for each packet type.
    for kind in 1..=6u8 {
        for data in [&[0xc0][..], &[0x01], &[0xf8, 0xff], &[0xc2, 0xc1, 0xc0]] {
            let mut signed = vec![kind];
            signed.extend_from_slice(data);
            let sig = SECP256K1
                .sign_ecdsa_recoverable(SecpMessage::from_digest(keccak256(&signed)), &key());
            let (rec, rs) = sig.serialize_compact();
            let mut p = vec![0u8; 32];
            p.extend_from_slice(&rs);
            p.push(i32::from(rec) as u8);
            p.extend_from_slice(&signed);
            let r = decode(&rehash(p));
            assert!(
                matches!(r, Err(PacketError::Rlp(_)) | Err(PacketError::Enr(_))),
                "kind {kind} data {data:?}: {r:?}"
            );
        }
    }
}
