//! The WebAssembly sandbox: user job modules under wasmtime with fuel, a wall-clock deadline per
//! call, a linear-memory cap and an output cap. Modules import nothing, so they have no
//! filesystem, no network and no clock. See docs/wasm-abi.md for the contract.

use shoal_protocol::BlobHash;
use shoal_protocol::bounded::BoundedMap;
use shoal_protocol::job::WasmLimits;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use wasmtime::{
    Engine, Instance, Memory, Module, Store, StoreLimits, StoreLimitsBuilder, TypedFunc,
};

/// The epoch clock ticks this often; deadlines are counted in ticks.
const TICK: Duration = Duration::from_millis(10);
/// Compiled modules kept per node.
const MODULE_CACHE: usize = 32;

/// Why a module was refused or a call failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum WasmError {
    #[error("not a valid WebAssembly module: {0}")]
    Invalid(String),
    #[error("the module imports {0}; job modules may import nothing")]
    Imports(String),
    #[error("the module does not export {name} with signature {signature}")]
    MissingExport {
        name: &'static str,
        signature: &'static str,
    },
    #[error("ran out of fuel ({0} units): the module runs too long or loops forever")]
    OutOfFuel(u64),
    #[error("exceeded the wall-clock deadline of {0} ms")]
    Deadline(u64),
    #[error("trapped: {0}")]
    Trap(String),
    #[error("returned {len} bytes, over the output cap of {cap} bytes")]
    OutputTooLarge { len: u64, cap: u64 },
    #[error("returned an output range {ptr}+{len} outside its memory of {size} bytes")]
    OutOfBounds { ptr: u32, len: u32, size: usize },
    #[error("memory limit of {0} bytes reached")]
    Memory(u64),
}

/// The signatures every job module must export, as documented in docs/wasm-abi.md.
const EXPORTS: [(&str, &str); 3] = [
    ("shoal_alloc", "(i32) -> i32"),
    ("shoal_map", "(i32, i32) -> i64"),
    ("shoal_reduce", "(i32, i32, i32, i32) -> i64"),
];

struct State {
    limits: StoreLimits,
}

/// One engine per process, with a background epoch clock for deadlines, and a cache of compiled
/// modules by hash.
pub struct Sandbox {
    engine: Engine,
    modules: Mutex<BoundedMap<BlobHash, Module>>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sandbox")
    }
}

/// The process-wide sandbox.
pub fn sandbox() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| {
        let mut config = wasmtime::Config::new();
        config.consume_fuel(true).epoch_interruption(true);
        let engine = Engine::new(&config).expect("the default engine configuration is valid");
        let ticker = engine.clone();
        std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(TICK);
                    ticker.increment_epoch();
                }
            })
            .expect("spawning the epoch thread");
        Sandbox {
            engine,
            modules: Mutex::new(BoundedMap::new(MODULE_CACHE)),
        }
    })
}

/// A module instance ready to take calls under the job's limits.
pub struct Job {
    store: Store<State>,
    memory: Memory,
    alloc: TypedFunc<i32, i32>,
    map: TypedFunc<(i32, i32), i64>,
    reduce: TypedFunc<(i32, i32, i32, i32), i64>,
    limits: WasmLimits,
}

impl Sandbox {
    /// Compiles and checks a module against the contract (no imports, the four exports).
    pub fn validate(&self, bytes: &[u8]) -> Result<Module, WasmError> {
        let module = Module::new(&self.engine, bytes)
            .map_err(|e| WasmError::Invalid(first_line(&e.to_string())))?;
        if let Some(import) = module.imports().next() {
            return Err(WasmError::Imports(format!(
                "{}::{}",
                import.module(),
                import.name()
            )));
        }
        if module.exports().all(|e| e.name() != "memory") {
            return Err(WasmError::MissingExport {
                name: "memory",
                signature: "memory",
            });
        }
        for (name, signature) in EXPORTS {
            let ok = module
                .get_export(name)
                .and_then(|e| e.func().cloned())
                .is_some_and(|f| {
                    use wasmtime::ValType::{I32, I64};
                    let params: Vec<_> = f.params().collect();
                    let results: Vec<_> = f.results().collect();
                    let want_params = match name {
                        "shoal_alloc" => 1,
                        "shoal_map" => 2,
                        _ => 4,
                    };
                    let want_result = if name == "shoal_alloc" { I32 } else { I64 };
                    params.len() == want_params
                        && params.iter().all(|p| matches!(p, I32))
                        && results.len() == 1
                        && results[0].matches(&want_result)
                });
            if !ok {
                return Err(WasmError::MissingExport { name, signature });
            }
        }
        Ok(module)
    }

    /// The compiled module for `hash`, compiling `bytes` on a cache miss.
    pub fn module(&self, hash: BlobHash, bytes: &[u8]) -> Result<Module, WasmError> {
        if let Some(m) = self.modules.lock().expect("module cache lock").get(&hash) {
            return Ok(m.clone());
        }
        let module = self.validate(bytes)?;
        self.modules
            .lock()
            .expect("module cache lock")
            .insert(hash, module.clone());
        Ok(module)
    }

    /// The compiled module for `hash`, if this node compiled it already.
    pub fn cached(&self, hash: &BlobHash) -> Option<Module> {
        self.modules
            .lock()
            .expect("module cache lock")
            .get(hash)
            .cloned()
    }

    /// Instantiates a module for one task.
    pub fn instantiate(&self, module: &Module, limits: WasmLimits) -> Result<Job, WasmError> {
        let memory_cap = usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX);
        let store_limits = StoreLimitsBuilder::new()
            .memory_size(memory_cap)
            .instances(1)
            .memories(1)
            .tables(4)
            .trap_on_grow_failure(true)
            .build();
        let mut store = Store::new(
            &self.engine,
            State {
                limits: store_limits,
            },
        );
        store.limiter(|s| &mut s.limits);
        store.set_fuel(limits.fuel).expect("fuel is enabled");
        store.set_epoch_deadline(deadline_ticks(limits.deadline_ms));
        let instance = Instance::new(&mut store, module, &[]).map_err(|e| classify(e, &limits))?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or(WasmError::MissingExport {
                name: "memory",
                signature: "memory",
            })?;
        let missing = |(name, signature): (&'static str, &'static str)| WasmError::MissingExport {
            name,
            signature,
        };
        let alloc = instance
            .get_typed_func(&mut store, "shoal_alloc")
            .map_err(|_| missing(EXPORTS[0]))?;
        let map = instance
            .get_typed_func(&mut store, "shoal_map")
            .map_err(|_| missing(EXPORTS[1]))?;
        let reduce = instance
            .get_typed_func(&mut store, "shoal_reduce")
            .map_err(|_| missing(EXPORTS[2]))?;
        Ok(Job {
            store,
            memory,
            alloc,
            map,
            reduce,
            limits,
        })
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_string()
}

fn deadline_ticks(ms: u64) -> u64 {
    (ms / TICK.as_millis() as u64).max(1)
}

/// Maps a wasmtime error to what happened, in words a job's author can act on.
fn classify(e: wasmtime::Error, limits: &WasmLimits) -> WasmError {
    if let Some(trap) = e.downcast_ref::<wasmtime::Trap>() {
        return match trap {
            wasmtime::Trap::OutOfFuel => WasmError::OutOfFuel(limits.fuel),
            wasmtime::Trap::Interrupt => WasmError::Deadline(limits.deadline_ms),
            wasmtime::Trap::AllocationTooLarge => WasmError::Memory(limits.memory_bytes),
            other => WasmError::Trap(other.to_string()),
        };
    }
    let text = format!("{e:#}");
    if text.contains("memory") && (text.contains("limit") || text.contains("grow")) {
        WasmError::Memory(limits.memory_bytes)
    } else {
        WasmError::Trap(text)
    }
}

impl Job {
    /// Resets the per-call budgets: every call gets the full fuel and deadline.
    fn arm(&mut self) {
        self.store
            .set_fuel(self.limits.fuel)
            .expect("fuel is enabled");
        self.store
            .set_epoch_deadline(deadline_ticks(self.limits.deadline_ms));
    }

    /// Copies `bytes` into memory from `shoal_alloc`; returns (ptr, len).
    fn write(&mut self, bytes: &[u8]) -> Result<(i32, i32), WasmError> {
        let len =
            i32::try_from(bytes.len()).map_err(|_| WasmError::Memory(self.limits.memory_bytes))?;
        self.arm();
        let ptr = self
            .alloc
            .call(&mut self.store, len)
            .map_err(|e| classify(e, &self.limits))?;
        self.memory
            .write(&mut self.store, ptr as u32 as usize, bytes)
            .map_err(|_| WasmError::OutOfBounds {
                ptr: ptr as u32,
                len: len as u32,
                size: self.memory.data_size(&self.store),
            })?;
        Ok((ptr, len))
    }

    /// Checks a packed (ptr << 32 | len) result against the memory and the output cap.
    fn output(&self, packed: i64) -> Result<(i32, i32), WasmError> {
        let packed = packed as u64;
        let (ptr, len) = ((packed >> 32) as u32, packed as u32);
        if u64::from(len) > self.limits.output_bytes {
            return Err(WasmError::OutputTooLarge {
                len: len.into(),
                cap: self.limits.output_bytes,
            });
        }
        let size = self.memory.data_size(&self.store);
        if (ptr as usize)
            .checked_add(len as usize)
            .is_none_or(|end| end > size)
        {
            return Err(WasmError::OutOfBounds { ptr, len, size });
        }
        Ok((ptr as i32, len as i32))
    }

    fn read(&self, (ptr, len): (i32, i32)) -> Vec<u8> {
        let start = ptr as u32 as usize;
        self.memory.data(&self.store)[start..start + len as u32 as usize].to_vec()
    }

    /// Runs `shoal_map` over one input.
    pub fn map(&mut self, input: &[u8]) -> Result<Vec<u8>, WasmError> {
        let (ptr, len) = self.write(input)?;
        self.arm();
        let packed = self
            .map
            .call(&mut self.store, (ptr, len))
            .map_err(|e| classify(e, &self.limits))?;
        let out = self.output(packed)?;
        Ok(self.read(out))
    }

    /// Folds `parts` with `shoal_reduce`, in order. The running result stays in the module's
    /// memory; only the final one is copied out.
    pub fn reduce(&mut self, parts: &[&[u8]]) -> Result<Vec<u8>, WasmError> {
        let Some((first, rest)) = parts.split_first() else {
            return Ok(Vec::new());
        };
        let mut acc = self.write(first)?;
        for part in rest {
            let next = self.write(part)?;
            self.arm();
            let packed = self
                .reduce
                .call(&mut self.store, (acc.0, acc.1, next.0, next.1))
                .map_err(|e| classify(e, &self.limits))?;
            acc = self.output(packed)?;
        }
        Ok(self.read(acc))
    }
}

/// Encodes a generated range for `shoal_map`: start and end as little-endian u64.
pub fn encode_range(start: u64, end: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&start.to_le_bytes());
    out[8..].copy_from_slice(&end.to_le_bytes());
    out
}
