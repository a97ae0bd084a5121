//! Valid encodings of every format, made with the formats' own encoders, for the stable
//! driver to mutate and for libFuzzer's starting corpora (`ricochet-fuzz seeds DIR`); and
//! per-format dictionaries of tokens worth inserting.

use ricochet::wire::{self, BodyView, Control, InputView, MessageView};
use ricochet_protocol::relay::{ClientFrame, ErrorCode, Opcode, RelayEvent, RelayFrame};
use ricochet_protocol::signaling::{
    self, ClientMessage, MatchId, Member, RelayGrant, ServerFrame, ServerMessage,
};
use ricochet_protocol::{PeerId, Ticket, TicketClaims};
use serde_json::json;

fn peer(n: u128) -> PeerId {
    PeerId(uuid::Uuid::from_u128(n))
}

fn claims(key: &str, seat: u8, max_players: u8, expires_at: u64) -> TicketClaims {
    TicketClaims {
        match_key: key.to_owned(),
        peer: peer(0x1234_5678_9abc_def0),
        seat,
        max_players,
        issued_at_ms: 1_700_000_000_000,
        expires_at,
    }
}

fn tickets() -> Vec<Ticket> {
    [
        claims("00112233445566778899aabbccddeeff", 0, 2, 1_700_000_060),
        claims("friday-night", 3, 4, u64::MAX),
        claims("m", 0, 1, 0),
        claims(&"k".repeat(255), 254, 255, 1),
        claims("é-ü", 15, 16, 1_700_000_000),
    ]
    .iter()
    .map(|c| Ticket::issue(crate::SECRET, c).expect("seed claims are valid"))
    .collect()
}

fn relay_client_frames() -> Vec<Vec<u8>> {
    let ticket = tickets()[0].as_str().to_owned();
    vec![
        ClientFrame::broadcast(Opcode(0), b"").to_vec(),
        ClientFrame::broadcast(Opcode(7), b"inputs").to_vec(),
        ClientFrame::broadcast(Opcode(0xEF), &[0; 40]).to_vec(),
        ClientFrame::to_member(Opcode(1), 0, b"x").to_vec(),
        ClientFrame::to_member(Opcode(9), 0x0102, b"payload").to_vec(),
        ClientFrame::to_member(Opcode(0xF0), 0xFFFF, b"").to_vec(),
        ClientFrame::broadcast(Opcode::RENEW, ticket.as_bytes()).to_vec(),
        ClientFrame::to_member(Opcode::RENEW, 3, ticket.as_bytes()).to_vec(),
    ]
}

fn relay_frames() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = [
        RelayEvent::Welcome {
            you: 2,
            members: vec![(0, peer(1)), (1, peer(2))],
        },
        RelayEvent::Welcome {
            you: 0,
            members: vec![],
        },
        RelayEvent::Join {
            member: 5,
            peer: peer(3),
        },
        RelayEvent::Leave {
            member: 0xFFFE,
            peer: peer(4),
        },
        RelayEvent::Error {
            code: ErrorCode::UnknownTarget,
            opcode: Opcode(3),
        },
        RelayEvent::Error {
            code: ErrorCode::TicketRefused,
            opcode: Opcode::RENEW,
        },
    ]
    .iter()
    .map(RelayEvent::to_vec)
    .collect();
    for (opcode, targeted, sender, payload) in [
        (4u8, true, 258u16, &b"hi"[..]),
        (0, false, 0, &[][..]),
        (0xEF, false, 7, &[1, 2, 3, 4][..]),
        (0xF5, false, 0xFFFF, &[][..]),
    ] {
        out.push(
            RelayFrame {
                opcode: Opcode(opcode),
                targeted,
                sender,
                payload,
            }
            .to_vec(),
        );
    }
    out
}

fn ticket_inputs() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (i, t) in tickets().iter().enumerate() {
        let now: u64 = [0, 1_700_000_000, u64::MAX, 1, 1_700_000_061][i];
        // Mode 0: the text as received.
        let mut text = vec![0u8];
        text.extend_from_slice(&now.to_be_bytes());
        text.extend_from_slice(t.as_str().as_bytes());
        out.push(text);
        // Mode 1: the signed part, which the target signs.
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(t.as_str())
            .expect("issued tickets are base64url");
        let mut signed = vec![1u8];
        signed.extend_from_slice(&now.to_be_bytes());
        signed.extend_from_slice(&bytes[..bytes.len() - 32]);
        out.push(signed);
    }
    out
}

fn signaling_client_frames() -> Vec<Vec<u8>> {
    [
        signaling::ClientFrame::Signal {
            receiver: peer(9),
            data: json!({"Offer": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}),
        },
        signaling::ClientFrame::Signal {
            receiver: peer(u128::MAX),
            data: json!({"IceCandidate": {"candidate": "candidate:1 1 udp 2130706431 10.0.0.2 5000 typ host", "sdpMid": "0", "sdpMLineIndex": 0}}),
        },
        signaling::ClientFrame::KeepAlive,
        signaling::ClientFrame::Ricochet(ClientMessage::SetMeta {
            meta: json!({"name": "ann", "team": 2, "ready": true, "x": [1.5, -0.0, null]}),
        }),
        signaling::ClientFrame::Ricochet(ClientMessage::RenewTicket),
        signaling::ClientFrame::Ricochet(ClientMessage::SetReady { ready: true }),
        signaling::ClientFrame::Ricochet(ClientMessage::Start),
    ]
    .iter()
    .map(|f| f.to_json().into_bytes())
    .collect()
}

fn signaling_server_frames() -> Vec<Vec<u8>> {
    let match_id = MatchId::from_bytes([0xab; 16]);
    let member = Member {
        peer: peer(1),
        meta: Some(json!({"name": "bo"})),
    };
    [
        ServerFrame::IdAssigned(peer(1)),
        ServerFrame::NewPeer(peer(2)),
        ServerFrame::PeerLeft(peer(3)),
        ServerFrame::Signal {
            sender: peer(4),
            data: json!({"Answer": "v=0"}),
        },
        ServerFrame::Ricochet(ServerMessage::Welcome {
            match_id,
            name: Some("friday-night".into()),
            max_players: 4,
            members: vec![
                member.clone(),
                Member {
                    peer: peer(2),
                    meta: None,
                },
            ],
            rejoin: Some(ricochet_protocol::signaling::Rejoin {
                token: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
                grace_secs: 10,
            }),
            lobby: Some(ricochet_protocol::signaling::Lobby {
                host: Some(peer(1)),
                min_players: 2,
                started: true,
                late_join: false,
                ready: vec![peer(1), peer(2)],
                roster: Some(vec![peer(1), peer(2)]),
            }),
            labels: [("mode".to_owned(), "duel".to_owned())].into(),
        }),
        ServerFrame::Ricochet(ServerMessage::PeerReady {
            peer: peer(2),
            ready: true,
        }),
        ServerFrame::Ricochet(ServerMessage::Host { peer: peer(2) }),
        ServerFrame::Ricochet(ServerMessage::Started {
            roster: vec![peer(1), peer(2)],
        }),
        ServerFrame::Ricochet(ServerMessage::PeerJoined(member.clone())),
        ServerFrame::Ricochet(ServerMessage::PeerLeft { peer: peer(5) }),
        ServerFrame::Ricochet(ServerMessage::PeerMeta(member)),
        ServerFrame::Ricochet(ServerMessage::Ticket(RelayGrant {
            relay_url: Some("ws://127.0.0.1:3537".into()),
            match_id,
            ticket: tickets()[0].clone(),
            expires_at: 1_700_000_060,
        })),
        ServerFrame::Ricochet(ServerMessage::Error {
            code: signaling::ErrorCode::RateLimited,
            message: "slow down \u{1F40C}".into(),
        }),
    ]
    .iter()
    .map(|f| f.to_json().into_bytes())
    .collect()
}

fn meta_inputs() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (max, text) in [
        (256u16, r#"{"name":"ann"}"#),
        (64, r#"{"a":1,"b":[true,false,null],"c":{"d":"e"}}"#),
        (8, r#"{"name":"too long for eight"}"#),
        (
            1024,
            r#"{"n":1e2,"m":-0,"s":"\u00e9\n","big":18446744073709551615}"#,
        ),
        (16, "[1,2]"),
        (0, "{}"),
    ] {
        let mut v = max.to_be_bytes().to_vec();
        v.extend_from_slice(text.as_bytes());
        out.push(v);
    }
    out
}

fn match_ids() -> Vec<Vec<u8>> {
    vec![
        b"00112233445566778899aabbccddeeff".to_vec(),
        b"00112233445566778899AABBCCDDEEFF".to_vec(),
        b"ffffffffffffffffffffffffffffffff".to_vec(),
        b"0011223344556677".to_vec(),
        b"friday-night".to_vec(),
    ]
}

/// ggrs's encoding of a batch of inputs, as its `compression::encode` writes it: each input
/// XORed with the previous one, prefixed by its length (`u16` LE), run-length encoded.
pub fn ggrs_input_bytes(inputs: &[&[u8]]) -> Vec<u8> {
    let mut base: Vec<u8> = Vec::new();
    let mut delta = Vec::new();
    for input in inputs {
        delta.extend_from_slice(&(input.len() as u16).to_le_bytes());
        for (i, b) in input.iter().enumerate() {
            delta.push(b ^ base.get(i).copied().unwrap_or(0));
        }
        base = input.to_vec();
    }
    bitfield_rle::encode(delta)
}

fn views() -> Vec<MessageView> {
    let input = |start_frame, ack_frame, statuses: Vec<(bool, i32)>, inputs: &[&[u8]]| {
        BodyView::Input(InputView {
            peer_connect_status: statuses,
            disconnect_requested: false,
            start_frame,
            ack_frame,
            bytes: ggrs_input_bytes(inputs),
        })
    };
    let bodies = vec![
        BodyView::SyncRequest {
            random: 0xDEAD_BEEF,
        },
        BodyView::SyncReply { random: 7 },
        input(0, -1, vec![(false, -1), (false, -1)], &[&[1, 0], &[1, 0]]),
        input(
            120,
            118,
            vec![(false, 119), (true, 100)],
            &[&[0, 0], &[0, 1], &[0, 1]],
        ),
        input(5, 4, vec![(false, 4)], &[]),
        input(30, 29, vec![(false, 29); 4], &[&[0xFF_u8; 8][..]; 5]),
        BodyView::InputAck { ack_frame: 300 },
        BodyView::InputAck { ack_frame: -1 },
        BodyView::QualityReport {
            frame_advantage: -3,
            ping: 1_700_000_000_000,
        },
        BodyView::QualityReply { pong: 42 },
        BodyView::ChecksumReport {
            checksum: u128::MAX,
            frame: 60,
        },
        BodyView::KeepAlive,
    ];
    bodies
        .into_iter()
        .map(|body| MessageView {
            magic: 0xBEEF,
            body,
        })
        .collect()
}

fn wire_packets() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = views()
        .iter()
        .map(|v| {
            let mut bytes = Vec::new();
            wire::encode_view(v, &mut bytes).expect("seed views encode");
            bytes
        })
        .collect();
    for msg in [
        Control::Checksums {
            first_frame: 120,
            interval: 10,
            checksums: vec![1, u64::MAX, 3],
        },
        Control::Checksums {
            first_frame: -5,
            interval: 1,
            checksums: vec![],
        },
        Control::ForensicChecksums {
            first_frame: 730,
            checksums: vec![7, 8, 9],
        },
        Control::StateChunk {
            frame: 733,
            checksum: 42,
            format: 0,
            total: 1500,
            offset: 1024,
            bytes: vec![b'{'; 476],
        },
        Control::ForensicDone { frame: 733 },
        Control::Message {
            stream: 0x0102_0304,
            seq: 0,
            op: 7,
            data: b"hi".to_vec(),
        },
        Control::Message {
            stream: u32::MAX,
            seq: 70_000,
            op: 255,
            data: vec![0x5a; 2048],
        },
        Control::MessageAck {
            stream: 0x0102_0304,
            next: 1,
        },
    ] {
        let mut bytes = Vec::new();
        wire::encode_control(&msg, &mut bytes);
        out.push(bytes);
    }
    out
}

/// A seed, then: messages of a stream from member 1 (out of order, with copies and one far
/// ahead), acks of what was sent, sends to everyone, one member, a set and a stranger, polls
/// and reads; and the same stream restarted.
fn match_message_inputs() -> Vec<Vec<u8>> {
    let packet = |from: u8, msg: Control, input: &mut Vec<u8>| {
        let mut bytes = Vec::new();
        wire::encode_control(&msg, &mut bytes);
        input.push(0);
        input.push(from);
        input.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        input.extend_from_slice(&bytes);
    };
    let message = |stream: u32, seq: u32| Control::Message {
        stream,
        seq,
        op: 7,
        data: format!("m{seq}").into_bytes(),
    };
    let mut input = 7u64.to_be_bytes().to_vec();
    // Sends: everyone, member 1, a stranger, a set; 20-byte data.
    for to in [0u8, 1, 2, 3] {
        input.extend_from_slice(&[1, to, 9, 0, 20]);
    }
    input.extend_from_slice(&[2, 1]); // poll after 4 ms
    for seq in [0, 2, 1, 1, 300, 3] {
        packet(1, message(0x0102_0304, seq), &mut input);
    }
    packet(3, message(99, 0), &mut input);
    // Acks: of nothing, of a stream never ours, far ahead.
    packet(1, Control::MessageAck { stream: 5, next: 2 }, &mut input);
    packet(
        2,
        Control::MessageAck {
            stream: 1,
            next: 1_000,
        },
        &mut input,
    );
    input.extend_from_slice(&[2, 60, 3]); // poll after 240 ms (resends), read
    let mut restarted = input.clone();
    for seq in [1, 0] {
        packet(1, message(0x0a0b_0c0d, seq), &mut restarted);
    }
    packet(1, message(0x0102_0304, 0), &mut restarted);
    restarted.extend_from_slice(&[2, 1, 3]);
    vec![input, restarted]
}

/// An interval and a checked frame, then the other side's checksums (differing at the
/// third frame of the window) and every chunk of its two states, each from peer 1.
fn forensic_inputs() -> Vec<Vec<u8>> {
    let (interval, checked) = (10u8, 246i32);
    let from = checked - i32::from(interval) + 1;
    let mut input = vec![interval];
    input.extend_from_slice(&((checked / 3) as u16).to_be_bytes());
    let push = |msg: Control, input: &mut Vec<u8>| {
        let mut bytes = Vec::new();
        wire::encode_control(&msg, &mut bytes);
        input.push(1);
        input.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        input.extend_from_slice(&bytes);
    };
    let sums = (from..=checked)
        .map(|f| f as u64 * 31 + u64::from(f >= from + 2))
        .collect();
    push(
        Control::ForensicChecksums {
            first_frame: from,
            checksums: sums,
        },
        &mut input,
    );
    let frame = from + 2;
    for f in [frame - 1, frame] {
        let state = vec![b'1'; 1500];
        for offset in [0usize, 1024] {
            let end = (offset + 1024).min(state.len());
            push(
                Control::StateChunk {
                    frame: f,
                    checksum: 5,
                    format: 1,
                    total: state.len() as u32,
                    offset: offset as u32,
                    bytes: state[offset..end].to_vec(),
                },
                &mut input,
            );
        }
    }
    push(Control::ForensicDone { frame }, &mut input);
    vec![input]
}

fn ggrs_guard_inputs() -> Vec<Vec<u8>> {
    // Layout (see `crate::ggrs_guard`): players - 1, an address per player, roster on/off,
    // ping count and pings, then blocks of [bounds on/off, current frame, confirmed lag,
    // prediction] [packets - 1] [from, length u16, bytes]...
    let packets = wire_packets();
    let mut out = Vec::new();
    for (i, chunk) in packets.chunks(3).enumerate() {
        let mut v = vec![1, 0, 1, (i % 2) as u8, 1];
        v.extend_from_slice(&42u64.to_be_bytes());
        v.push(1);
        v.extend_from_slice(&(100u32 + i as u32 * 20).to_be_bytes());
        v.extend_from_slice(&[2, 8, chunk.len() as u8 - 1]);
        for p in chunk {
            v.push(1);
            v.extend_from_slice(&(p.len() as u16).to_be_bytes());
            v.extend_from_slice(p);
        }
        out.push(v);
    }
    // Quality reply echoing the ping 42, from peer 1.
    let mut echo = Vec::new();
    wire::encode_view(
        &MessageView {
            magic: 0xBEEF,
            body: BodyView::QualityReply { pong: 42 },
        },
        &mut echo,
    )
    .expect("encodes");
    let mut v = vec![1, 0, 1, 1, 1];
    v.extend_from_slice(&42u64.to_be_bytes());
    v.extend_from_slice(&[0, 0, 1]);
    v.extend_from_slice(&(echo.len() as u16).to_be_bytes());
    v.extend_from_slice(&echo);
    out.push(v);
    out
}

fn path_inputs() -> Vec<Vec<u8>> {
    // [mode] [ice_timeout, direct_silence, probe_every, return_holdoff, hedge_after] events...
    // Channel open, then 40 packets (op 0: length 4, header (flags: copies wanted now and then,
    // the sender ready for the direct path always), a body byte, direct or not),
    // each followed by 17 ms (op 3) and a route (op 8).
    let mut v = vec![0, 40, 120, 8, 250, 20, 4];
    for seq in 0u16..40 {
        let [hi, lo] = seq.to_be_bytes();
        v.extend_from_slice(&[
            0,
            4,
            hi,
            lo,
            (seq % 7 == 0) as u8 | 0x02,
            0xAA,
            (seq > 3) as u8,
        ]);
        v.extend_from_slice(&[3, 0, 17, 8]);
    }
    v.extend_from_slice(&[3, 0x0F, 0xFF, 8, 5, 8, 2, 0xFF, 0xF0, 100, 1]);
    vec![
        v.clone(),
        {
            let mut f = v.clone();
            f[0] = 1;
            f
        },
        {
            let mut d = v;
            d[0] = 2;
            d
        },
    ]
}

fn stun_inputs() -> Vec<Vec<u8>> {
    use rtc_stun::attributes::ATTR_SOFTWARE;
    use rtc_stun::fingerprint::FINGERPRINT;
    use rtc_stun::message::{
        Message, MessageType, Setter, TransactionId, BINDING_REQUEST, BINDING_SUCCESS,
        CLASS_INDICATION, METHOD_BINDING,
    };
    use rtc_stun::textattrs::TextAttribute;
    let build = |typ: MessageType, software: bool, fingerprint: bool| {
        let mut m = Message::new();
        let mut setters: Vec<Box<dyn Setter>> =
            vec![Box::new(TransactionId([7; 12])), Box::new(typ)];
        if software {
            setters.push(Box::new(TextAttribute::new(
                ATTR_SOFTWARE,
                "ricochet-fuzz".into(),
            )));
        }
        if fingerprint {
            setters.push(Box::new(FINGERPRINT));
        }
        m.build(&setters).expect("seed messages build");
        m.raw
    };
    let requests = [
        build(BINDING_REQUEST, false, false),
        build(BINDING_REQUEST, false, true),
        build(BINDING_REQUEST, true, true),
        build(BINDING_SUCCESS, false, true),
        build(
            MessageType::new(METHOD_BINDING, CLASS_INDICATION),
            false,
            false,
        ),
    ];
    let mut out = Vec::new();
    for (i, req) in requests.iter().enumerate() {
        let mut v4 = vec![0, 198, 51, 100, i as u8, 0x9C, 0x40];
        v4.extend_from_slice(req);
        out.push(v4);
        let mut v6 = vec![1];
        v6.extend_from_slice(&[
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, i as u8,
        ]);
        v6.extend_from_slice(&[0, 5]);
        v6.extend_from_slice(req);
        out.push(v6);
    }
    // An IPv4-mapped IPv6 source.
    let mut mapped = vec![
        1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 9, 4, 210,
    ];
    mapped.extend_from_slice(&requests[0]);
    out.push(mapped);
    out
}

fn stun_limiter_inputs() -> Vec<Vec<u8>> {
    // [per-source rate, burst, global rate, max sources] then (source, step, step scale)...
    let mut flood = vec![20, 40, 200, 4];
    for i in 0..200u8 {
        flood.extend_from_slice(&[i % 3, 5, 1]);
    }
    let mut many = vec![5, 2, 30, 3];
    for i in 0..200u8 {
        many.extend_from_slice(&[i.wrapping_mul(37), 200, (i % 4)]);
    }
    vec![flood, many]
}

/// A spectator stream: a key (state 8 bytes, 2 players) then inputs, a late joiner's frame, a
/// key checked on the way, a gap and a key after it (each record after its length byte).
fn stream_inputs() -> Vec<Vec<u8>> {
    use ricochet_protocol::relay::{StreamKind, StreamRecord};
    let key = |frame: u32, players: u8, sum: u64| {
        let mut body = 0u32.to_be_bytes().to_vec();
        body.push(players);
        body.extend_from_slice(&sum.to_be_bytes());
        body.push(1);
        body.extend_from_slice(&sum.to_be_bytes());
        StreamRecord {
            kind: StreamKind::Key,
            frame,
            count: 0,
            body: &body,
        }
        .to_vec()
    };
    let inputs = |frame: u32, players: u8| {
        let mut body = vec![players, 0, 2];
        for p in 0..players {
            body.extend_from_slice(&[0, p, 7]);
        }
        StreamRecord {
            kind: StreamKind::Inputs,
            frame,
            count: 1,
            body: &body,
        }
        .to_vec()
    };
    let records = [
        key(16, 2, 5),
        inputs(16, 2),
        inputs(17, 2),
        inputs(18, 3),
        key(19, 3, 0),
        inputs(19, 3),
        inputs(25, 3),
        key(300, 3, 9),
        inputs(300, 3),
    ];
    let mut one = Vec::new();
    for r in &records {
        one.push(r.len() as u8);
        one.extend_from_slice(r);
    }
    vec![one]
}

/// Valid encodings for the target called `name` (empty for an unknown name).
pub fn seeds(name: &str) -> Vec<Vec<u8>> {
    match name {
        "relay_client_frame" => relay_client_frames(),
        "relay_frame" => relay_frames(),
        "ticket" => ticket_inputs(),
        "signaling_client_frame" => signaling_client_frames(),
        "signaling_server_frame" => signaling_server_frames(),
        "signaling_meta" => meta_inputs(),
        "match_id" => match_ids(),
        "wire_packet" => wire_packets(),
        "ggrs_guard" => ggrs_guard_inputs(),
        "path_header" => path_inputs(),
        "stun" => stun_inputs(),
        "stun_limiter" => stun_limiter_inputs(),
        "session_description" => session_descriptions(),
        "forensics" => forensic_inputs(),
        "match_messages" => match_message_inputs(),
        "spectator_stream" => stream_inputs(),
        _ => Vec::new(),
    }
}

const JSON_TOKENS: &[&str] = &[
    "\"Ricochet\"",
    "\"type\"",
    "\"set_meta\"",
    "\"renew_ticket\"",
    "\"Signal\"",
    "\"KeepAlive\"",
    "\"receiver\"",
    "\"sender\"",
    "\"data\"",
    "\"IdAssigned\"",
    "\"NewPeer\"",
    "\"PeerLeft\"",
    "\"welcome\"",
    "\"peer_joined\"",
    "\"peer_left\"",
    "\"peer_meta\"",
    "\"ticket\"",
    "\"error\"",
    "\"match_id\"",
    "\"name\"",
    "\"max_players\"",
    "\"members\"",
    "\"peer\"",
    "\"meta\"",
    "\"relay_url\"",
    "\"expires_at\"",
    "\"code\"",
    "\"message\"",
    "\"00000000-0000-0000-0000-000000000001\"",
    "\"00112233445566778899aabbccddeeff\"",
    "null",
    "true",
    "false",
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "1e308",
    "-0",
    "1.5e-400",
    "18446744073709551616",
    "-9223372036854775809",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\\",
    "{\"a\":",
    "[[[[[[[[",
];

/// Tokens worth inserting into inputs of the target called `name`.
pub fn dictionary(name: &str) -> Vec<Vec<u8>> {
    let tokens: Vec<&[u8]> = match name {
        "signaling_client_frame" | "signaling_server_frame" | "signaling_meta" => {
            JSON_TOKENS.iter().map(|t| t.as_bytes()).collect()
        }
        "match_id" => vec![
            b"0",
            b"f",
            b"F",
            b"g",
            b"\xc3\xa9",
            b"00112233445566778899aabbccddeeff",
        ],
        "ticket" => vec![b"A", b"_", b"-", b"=", b"+", b"/", b"AAAA"],
        "stun" => vec![
            &[0x21, 0x12, 0xA4, 0x42],
            &[0x00, 0x01],
            &[0x01, 0x01],
            &[0x80, 0x28, 0x00, 0x04],
            &[0x00, 0x20, 0x00, 0x08],
            &[0x80, 0x22],
            &[0x00, 0x08, 0x00, 0x14],
        ],
        "relay_client_frame" | "relay_frame" => vec![
            &[0xF0],
            &[0xF1],
            &[0xF2],
            &[0xF3],
            &[0xF4],
            &[0xFF, 0xFF],
            &[0x01],
        ],
        _ => Vec::new(),
    };
    tokens.into_iter().map(<[u8]>::to_vec).collect()
}

/// Offers and answers as webrtc-rs and Chromium write them for one data channel, and broken ones.
fn session_descriptions() -> Vec<Vec<u8>> {
    let offer = "v=0\r\no=- 2927 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
        a=fingerprint:sha-256 AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89\r\n\
        a=group:BUNDLE 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n\
        a=setup:actpass\r\na=mid:0\r\na=sendrecv\r\na=sctp-port:5000\r\n\
        a=ice-ufrag:abcdEFGH\r\na=ice-pwd:abcdefghijklmnopqrstuvwxyz012345\r\n";
    vec![
        offer.as_bytes().to_vec(),
        offer.replace("a=mid:0\r\n", "").into_bytes(),
        offer.replace("actpass", "active").into_bytes(),
        format!("{offer}m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\n").into_bytes(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_has_seeds_and_they_pass() {
        for (name, target) in crate::TARGETS {
            let seeds = seeds(name);
            assert!(!seeds.is_empty(), "{name} has no seeds");
            for s in &seeds {
                target(s);
            }
        }
    }

    #[test]
    fn the_seeds_are_valid_encodings() {
        for s in seeds("relay_client_frame") {
            ClientFrame::parse(&s).unwrap();
        }
        for s in seeds("relay_frame") {
            RelayFrame::parse(&s).unwrap().event().unwrap();
        }
        for s in seeds("ticket").iter().filter(|s| s[0] == 0) {
            let text = std::str::from_utf8(&s[9..]).unwrap();
            Ticket::from_text(text)
                .verify_signature(crate::SECRET)
                .unwrap();
        }
        for s in seeds("signaling_client_frame") {
            signaling::ClientFrame::from_json(std::str::from_utf8(&s).unwrap()).unwrap();
        }
        for s in seeds("signaling_server_frame") {
            ServerFrame::from_json(std::str::from_utf8(&s).unwrap()).unwrap();
        }
        for s in seeds("wire_packet") {
            wire::decode(&s).unwrap();
        }
        // The input batches are what ggrs itself would accept.
        let bytes = ggrs_input_bytes(&[&[1, 2], &[1, 3], &[]]);
        assert_eq!(crate::ggrs_inputs(&bytes), Some((3, 10)));
    }
}
