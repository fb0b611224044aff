//! Monte Carlo pi as a WebAssembly job over a range of sample indices. Each sample's point is
//! derived from its index alone (a counter-based generator), so the result does not depend on
//! how the range is split into tasks.
//!
//! Output: `{"hits":H,"pi":F,"samples":N}`.

/// splitmix64's finalizer: a well-mixed 64-bit value from a counter.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn unit(x: u64) -> f64 {
    (x >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Whether sample `i` falls inside the quarter circle.
pub fn hit(i: u64) -> bool {
    let x = unit(mix(2 * i));
    let y = unit(mix(2 * i + 1));
    x * x + y * y <= 1.0
}

pub fn encode(samples: u64, hits: u64) -> Vec<u8> {
    let pi = 4.0 * hits as f64 / samples.max(1) as f64;
    format!("{{\"hits\":{hits},\"pi\":{pi},\"samples\":{samples}}}").into_bytes()
}

pub fn decode(bytes: &[u8]) -> (u64, u64) {
    let c = shoal_guest::counts::decode(bytes);
    (
        c.get("samples").copied().unwrap_or(0),
        c.get("hits").copied().unwrap_or(0),
    )
}

pub fn map(input: &[u8]) -> Vec<u8> {
    let Some((start, end)) = shoal_guest::range(input) else {
        return encode(0, 0);
    };
    let hits = (start..end).filter(|&i| hit(i)).count() as u64;
    encode(end - start, hits)
}

pub fn reduce(a: &[u8], b: &[u8]) -> Vec<u8> {
    let (sa, ha) = decode(a);
    let (sb, hb) = decode(b);
    encode(sa + sb, ha + hb)
}

// Exported only in the WebAssembly build, so the host can link the crate for its tests.
#[cfg(target_arch = "wasm32")]
shoal_guest::job!(map: map, reduce: reduce);
