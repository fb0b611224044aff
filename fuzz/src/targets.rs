//! The fuzz targets: every decoder that takes bytes from the network or from a file, each with
//! seeds (valid encodings) to mutate. A target fails only by panicking; every error a decoder
//! returns is a correct answer to garbage.

use futures::executor::block_on;
use libp2p::request_response::Codec as _;
use shoal_node::blob_proto::{BlobCodec, PROTOCOL};
use shoal_node::job_request::JobRequest;
use shoal_ops::{self as ops, MapInput};
use shoal_protocol::codec;
use shoal_protocol::durable::{Durability, Ending, OutputRef};
use shoal_protocol::job::{ChunkRef, GeneratedPart, Manifest, WasmLimits};
use shoal_protocol::wire::{
    Advert, Announce, Batch, Decline, Envelope, Failure, Finished, Lost, Member, Message, Pulse,
    Query, ResultRef,
};
use shoal_protocol::{BlobHash, Capacity, Config, Input, JobSpec, Node, NodeId, Operator, Trust};

/// What a target does with one input (it fails only by panicking).
pub type Run = Box<dyn FnMut(&[u8])>;

/// One target: its name, its seeds, and what it does with an input.
pub struct Target {
    pub name: &'static str,
    pub seeds: Vec<Vec<u8>>,
    pub run: Run,
}

/// Every target, by name.
pub fn all() -> Vec<Target> {
    vec![
        envelope(),
        node(),
        blob_frames(),
        direct_frames(),
        seals(),
        manifest(),
        partials(),
        api_request(),
        wasm_output(),
        wasm_module(),
    ]
}

fn node_id(i: u8) -> NodeId {
    NodeId::from_identity_bytes(&[i])
}

fn spec() -> JobSpec {
    JobSpec {
        op: Operator::SumSq,
        input: Input::Range {
            start: 0,
            end: 10_000,
            tasks: 64,
        },
        fanin: 4,
        trust: Trust {
            replicas: 2,
            verify_ppm: 0,
        },
        sched: shoal_protocol::schedule::Schedule {
            priority: 3,
            needs: shoal_protocol::schedule::Needs {
                tags: vec!["gpu".into()],
                mem_mb: 64,
            },
        },
        keep: Durability {
            copies: 2,
            detached: true,
        },
        reuse: true,
    }
}

/// Valid messages of every kind, about the job [`spec`] of which node 1 is a member.
fn messages() -> Vec<Vec<u8>> {
    let job = spec().id();
    let result = ResultRef::Inline(codec::encode_blob(&42u128).into());
    let bodies = vec![
        Message::Advert(Advert {
            slots_total: 4,
            slots_free: 2,
            cores: 4,
            mem_mb: 1024,
            load_milli: 300,
            interval_ms: 1000,
            first: false,
            tags: vec!["gpu".into()],
            shares: vec![shoal_protocol::dataset::Share {
                name: "logs".into(),
                manifest: BlobHash::of(b"manifest"),
                chunks: 3,
                bytes: 300,
            }],
        }),
        Message::Announce(Announce {
            job,
            submitter: node_id(1),
            spec: spec(),
            epoch: 1,
            members: vec![
                Member {
                    id: node_id(1),
                    weight: 2,
                },
                Member {
                    id: node_id(2),
                    weight: 2,
                },
            ],
            done: vec![(0, 3)],
            own_topic: false,
        }),
        Message::Batch(Batch {
            job,
            claims: vec![1, 2, 70],
            done: vec![(4, result.clone()), (64, result)],
            failed: vec![Failure {
                task: 5,
                reason: "boom".into(),
                transient: false,
            }],
            lost: vec![Lost {
                task: 4,
                holder: node_id(2),
            }],
            checks: vec![(4, true)],
            released: vec![3],
            reused: vec![4],
            looked_up: true,
            moved: 4096,
            held: vec![0, 2],
            output: Some(OutputRef {
                hash: BlobHash::of(b"out"),
                len: 3,
            }),
        }),
        Message::Pulse(Pulse {
            job,
            running: vec![1, 2],
        }),
        Message::Finished(Finished {
            job,
            epoch: 1,
            ending: Ending::Done {
                output: OutputRef {
                    hash: BlobHash::of(b"out"),
                    len: 3,
                },
                holders: vec![node_id(1), node_id(2)],
            },
        }),
        Message::Finished(Finished {
            job,
            epoch: 2,
            ending: Ending::Failed {
                error: "task 3 failed".into(),
            },
        }),
        Message::Decline(Decline { job, epoch: 1 }),
        Message::Query(Query { job }),
    ];
    bodies
        .into_iter()
        .enumerate()
        .map(|(seq, body)| {
            Envelope {
                seq: seq as u64,
                body,
            }
            .encode()
        })
        .collect()
}

/// Wire envelopes: decoding never panics, and what decodes encodes back to the same message.
fn envelope() -> Target {
    Target {
        name: "envelope",
        seeds: messages(),
        run: Box::new(|bytes| {
            if let Ok(env) = Envelope::decode(bytes) {
                let again = Envelope::decode(&env.encode()).expect("a decoded message re-encodes");
                assert_eq!(again.body, env.body);
            }
        }),
    }
}

/// A protocol node that receives the bytes from a member of one of its jobs, then runs its
/// timers: no message, however forged, may panic the state machine.
fn node() -> Target {
    let cap = Capacity {
        slots: 2,
        cores: 2,
        mem_mb: 1024,
    };
    let mut node = Node::new(node_id(1), cap, Config::default(), 1);
    let mut now = 0;
    node.submit(now, spec(), 1).expect("a valid spec");
    Target {
        name: "node",
        seeds: messages(),
        run: Box::new(move |bytes| {
            now += 7;
            let _ = node.handle_message(now, node_id(2), bytes);
            node.handle_timeout(now);
            while node.poll_subscription().is_some() {}
            while node.poll_transmit().is_some() {}
            while node.poll_effect().is_some() {}
            let _ = node.poll_timeout();
        }),
    }
}

/// Blob protocol frames, both directions, as a peer would send them.
fn blob_frames() -> Target {
    let mut request = 32u32.to_be_bytes().to_vec();
    request.extend_from_slice(&[7; 32]);
    let mut found = vec![1];
    found.extend_from_slice(&5u32.to_be_bytes());
    found.extend_from_slice(b"hello");
    Target {
        name: "blob-frames",
        seeds: vec![request, found, vec![0]],
        run: Box::new(|bytes| {
            let mut codec = BlobCodec;
            let _ = block_on(codec.read_request(&PROTOCOL, &mut futures::io::Cursor::new(bytes)));
            let _ = block_on(codec.read_response(&PROTOCOL, &mut futures::io::Cursor::new(bytes)));
        }),
    }
}

/// Direct-stream frame bodies (what follows a frame's length), as a peer would send them.
fn direct_frames() -> Target {
    let frame = shoal_node::direct::frame("shoal/jobs/4", b"payload");
    Target {
        name: "direct-frames",
        seeds: vec![frame[4..].to_vec(), vec![0, 0], vec![1]],
        run: Box::new(|bytes| {
            let _ = shoal_node::direct::parse(bytes);
        }),
    }
}

/// Sealed gossip messages, opened with and without their seal checked.
fn seals() -> Target {
    let key = libp2p::identity::Keypair::generate_ed25519();
    let author = key.public().to_peer_id();
    let other = libp2p::identity::Keypair::generate_ed25519()
        .public()
        .to_peer_id();
    let sealed = shoal_node::seal::seal(&key, "shoal/jobs/4", &[other], b"payload");
    let mut checker = shoal_node::seal::SealChecker::default();
    Target {
        name: "seals",
        seeds: vec![sealed, vec![0; 64]],
        run: Box::new(move |bytes| {
            let _ = shoal_node::seal::unchecked(bytes);
            let _ = checker.open(bytes, "shoal/jobs/4", &author);
        }),
    }
}

/// Input manifests, as fetched from a submitter.
fn manifest() -> Target {
    let m = Manifest {
        chunks: vec![
            ChunkRef {
                hash: BlobHash::of(b"a"),
                len: 10,
            },
            ChunkRef {
                hash: BlobHash::of(b"b"),
                len: 1 << 20,
            },
        ],
    };
    Target {
        name: "manifest",
        seeds: vec![codec::encode_blob(&m)],
        run: Box::new(|bytes| {
            let _ = codec::decode_blob::<Manifest>(bytes);
        }),
    }
}

fn builtins() -> Vec<Operator> {
    vec![
        Operator::WordCount,
        Operator::Grep {
            pattern: "shoal".into(),
        },
        Operator::SumSq,
        Operator::Pi,
    ]
}

/// Partial results of every built-in operator, as a peer reports them: reduced alone and
/// with an honest partial, finalized, blamed, and lied about.
fn partials() -> Target {
    let text = b"shoal of fish\nSHOAL \xc3\xa9t\xc3\xa9 \xe6\xb5\xb7\n";
    let mut seeds = Vec::new();
    let mut honest = Vec::new();
    for op in builtins() {
        let part = match op {
            Operator::SumSq => ops::map(
                &op,
                MapInput::Generated(GeneratedPart::Range { start: 0, end: 100 }),
            ),
            Operator::Pi => ops::map(
                &op,
                MapInput::Generated(GeneratedPart::Samples {
                    count: 100,
                    seed: 3,
                }),
            ),
            _ => ops::map(&op, MapInput::Chunk(text)),
        }
        .expect("an honest map");
        seeds.push(part.clone());
        honest.push((op, part));
    }
    Target {
        name: "partials",
        seeds,
        run: Box::new(move |bytes| {
            for (op, good) in &honest {
                let _ = ops::reduce(op, &[bytes]);
                let _ = ops::reduce(op, &[good, bytes, good]);
                let _ = ops::finalize(op, bytes);
                let _ = ops::corrupt_input(op, &[good, bytes]);
                let _ = ops::plausible_lie(op, bytes);
            }
        }),
    }
}

/// Bodies of `POST /api/v1/jobs`: parsed and checked as the API does before anything runs.
fn api_request() -> Target {
    let seeds = [
        r#"{"kind":{"SumSq":{"start":0,"end":1000}},"fanin":4,"chunk_size":null,"tasks":7,"replicas":2}"#,
        r#"{"kind":{"Pi":{"samples":100000}},"fanin":8,"chunk_size":null,"tasks":null,"verify_fraction":0.25}"#,
        r#"{"kind":{"WordCount":{"paths":["/tmp/x"]}},"fanin":4,"chunk_size":4096,"tasks":null,"exclude":["*.log"]}"#,
    ];
    Target {
        name: "api-request",
        seeds: seeds.iter().map(|s| s.as_bytes().to_vec()).collect(),
        run: Box::new(|bytes| {
            if let Ok(request) = serde_json::from_slice::<JobRequest>(bytes) {
                let _ = request.trust().validate();
                if let Some(spec) = request.generated_spec() {
                    let _ = spec.validate();
                }
            }
        }),
    }
}

/// A module that returns whatever (ptr, len) its input says: the host's checks of a module's
/// output range and size.
const ECHO_WAT: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "shoal_alloc") (param i32) (result i32) i32.const 0)
  (func (export "shoal_map") (param i32 i32) (result i64) local.get 0 i64.load)
  (func (export "shoal_reduce") (param i32 i32 i32 i32) (result i64) local.get 0 i64.load))"#;

/// Outputs of a WebAssembly module: any packed (ptr, len) it returns.
fn wasm_output() -> Target {
    let sandbox = shoal_node::wasm::sandbox();
    let module = sandbox
        .validate(&wat::parse_str(ECHO_WAT).expect("valid WAT"))
        .expect("a valid module");
    let limits = WasmLimits {
        output_bytes: 1 << 12,
        ..WasmLimits::default()
    };
    let seeds = vec![
        ((8u64 << 32) | 4).to_le_bytes().to_vec(),
        ((65_530u64 << 32) | 10).to_le_bytes().to_vec(),
        (u64::MAX).to_le_bytes().to_vec(),
    ];
    Target {
        name: "wasm-output",
        seeds,
        run: Box::new(move |bytes| {
            let mut input = bytes.to_vec();
            input.resize(input.len().max(8), 0);
            if let Ok(mut job) = sandbox.instantiate(&module, limits) {
                let _ = job.map(&input);
                let _ = job.reduce(&[&input, &input]);
            }
        }),
    }
}

/// Module bytes, as a submitter sends them: checked against the contract.
fn wasm_module() -> Target {
    Target {
        name: "wasm-module",
        seeds: vec![wat::parse_str(ECHO_WAT).expect("valid WAT")],
        run: Box::new(|bytes| {
            let _ = shoal_node::wasm::sandbox().validate(bytes);
        }),
    }
}
