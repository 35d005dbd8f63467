//! Character cards from the command line: `troupe import` (cards, or a lorebook into a
//! Character's) and `troupe export`. One line per file; a file that fails is named with its
//! problem and changes nothing.

use std::path::PathBuf;

use anyhow::bail;

use crate::app::{CardFormat, Imported, Troupe};

/// `troupe import FILE…`: one line per file imported; the failures on stderr.
pub fn import(
    troupe: &Troupe,
    files: &[PathBuf],
    lorebook_for: Option<&str>,
) -> anyhow::Result<()> {
    let mut failed = 0;
    for file in files {
        match troupe.import_card(file, lorebook_for) {
            Ok(Imported::Character(c)) => {
                println!("{}\t{}\t{}", c.id, c.category.as_str(), c.name)
            }
            Ok(Imported::Lorebook { character, entries }) => {
                println!("{character}\tlorebook\t+{entries} entries")
            }
            Err(e) => {
                failed += 1;
                eprintln!("{e}");
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} files not imported", files.len());
    }
    Ok(())
}

/// `troupe export ID --format png|json|charx [--out FILE]`: prints where it wrote the card.
pub fn export(troupe: &Troupe, id: &str, format: &str, out: Option<PathBuf>) -> anyhow::Result<()> {
    let format = match format {
        "json" => CardFormat::Json,
        "charx" => CardFormat::Charx,
        _ => CardFormat::Png,
    };
    let bytes = troupe.export_card(id, format)?;
    let out = out.unwrap_or_else(|| PathBuf::from(format!("{id}.{}", format.extension())));
    std::fs::write(&out, bytes)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", out.display()))?;
    println!("{}", out.display());
    Ok(())
}
