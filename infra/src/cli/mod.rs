//! The `tessera` command's subcommands that are more than a call into the library: `model`
//! (the scale model's inputs and output), `query` (a query over a local file) and `rules`
//! (rule suggestions for a local file), and the size parser their flags share. Part of the
//! binary only (`src/main.rs`), not of the library.

pub mod model;
pub mod query;
pub mod rules;

/// `50GB`, `1TB`, `128MiB`, `4096`: decimal (KB, MB, GB, TB) or binary (KiB, MiB, GiB, TiB) units.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a size: write e.g. 50GB, 1TB or 128MiB"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        u => {
            return Err(format!(
                "unknown unit {u:?} in {text:?}: use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB"
            ))
        }
    };
    let bytes = (n * mult).round();
    if bytes < 1.0 {
        return Err(format!("{text:?} is below one byte"));
    }
    Ok(bytes as u64)
}
