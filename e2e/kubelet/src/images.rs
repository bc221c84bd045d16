//! Image → binary map: which local program runs a container's image.
//!
//! Resolution order for an image reference:
//!
//! 1. an explicit entry (`--image-map IMAGE=PATH` or the YAML map file) for
//!    the exact reference, then for the reference without tag and digest
//!    (so `millpond/testapp=...` matches `millpond/testapp:any`);
//! 2. the built-in rule: `millpond/<name>[:tag]` (any registry prefix) and
//!    `<registry>/<org>/millpond-<name>[:tag]` run the cargo-built binary
//!    `millpond-<name>`, looked up in the `--bin-dir` directories in order.
//!
//! Nothing here touches the file system: existence checks are passed in, so
//! the rules are unit tested directly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The configured image map.
#[derive(Debug, Clone, Default)]
pub struct ImageMap {
    explicit: BTreeMap<String, PathBuf>,
    bin_dirs: Vec<PathBuf>,
}

impl ImageMap {
    /// A map with explicit entries and the directories searched by the
    /// built-in rule.
    pub fn new(explicit: BTreeMap<String, PathBuf>, bin_dirs: Vec<PathBuf>) -> Self {
        Self { explicit, bin_dirs }
    }

    /// The directories searched by the built-in rule.
    pub fn bin_dirs(&self) -> &[PathBuf] {
        &self.bin_dirs
    }

    /// Resolves an image to the program that runs it. `exists` says whether
    /// a candidate file is present and executable. On failure the message is
    /// what the container's `ErrImagePull` status says.
    pub fn resolve(&self, image: &str, exists: impl Fn(&Path) -> bool) -> Result<PathBuf, String> {
        let image = image.trim();
        if image.is_empty() {
            return Err("the container has no image".to_string());
        }
        let repo = repository(image);
        if let Some(path) = self.explicit.get(image).or_else(|| self.explicit.get(repo)) {
            return if exists(path) {
                Ok(path.clone())
            } else {
                Err(format!(
                    "image {image:?} is mapped to {} (--image-map), which does not exist or is not executable",
                    path.display()
                ))
            };
        }
        let Some(binary) = builtin_binary_name(image) else {
            return Err(format!(
                "image {image:?} has no mapping: add --image-map {repo}=/path/to/program \
                 (only millpond/<name> and .../millpond-<name> images map to binaries by name)"
            ));
        };
        for dir in &self.bin_dirs {
            let candidate = dir.join(&binary);
            if exists(&candidate) {
                return Ok(candidate);
            }
        }
        let dirs: Vec<String> = self
            .bin_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        Err(format!(
            "image {image:?} maps to binary {binary}, not found in --bin-dir [{}] (build it with cargo build --release)",
            dirs.join(", ")
        ))
    }
}

/// The repository part of an image reference: without `@digest` and without
/// `:tag` (a `:` before the last `/` is a registry port, not a tag).
pub fn repository(image: &str) -> &str {
    let no_digest = image.split_once('@').map_or(image, |(repo, _)| repo);
    let last_slash = no_digest.rfind('/').map_or(0, |i| i + 1);
    match no_digest[last_slash..].find(':') {
        Some(colon) => &no_digest[..last_slash + colon],
        None => no_digest,
    }
}

/// The binary name the built-in rule gives an image, if the image follows
/// it: `.../millpond/<name>` → `millpond-<name>`, `.../millpond-<name>` →
/// `millpond-<name>`.
pub fn builtin_binary_name(image: &str) -> Option<String> {
    let segments: Vec<&str> = repository(image).split('/').collect();
    let last = *segments.last()?;
    let valid = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
    };
    if !valid(last) {
        return None;
    }
    if let Some(name) = last.strip_prefix("millpond-") {
        return (!name.is_empty()).then(|| last.to_string());
    }
    if segments.len() >= 2 && segments[segments.len() - 2] == "millpond" {
        return Some(format!("millpond-{last}"));
    }
    None
}

/// Parses one `--image-map IMAGE=PATH` flag.
pub fn parse_flag(entry: &str) -> Result<(String, PathBuf)> {
    match entry.split_once('=') {
        Some((image, path)) if !image.trim().is_empty() && !path.trim().is_empty() => {
            Ok((image.trim().to_string(), PathBuf::from(path.trim())))
        }
        _ => Err(Error::Config(format!(
            "--image-map wants IMAGE=PATH, got {entry:?}"
        ))),
    }
}

/// Parses an image map file: a YAML mapping of image reference to program
/// path, e.g. `busybox: /usr/bin/busybox`.
pub fn parse_yaml(text: &str) -> Result<BTreeMap<String, PathBuf>> {
    if text.trim().is_empty() {
        return Ok(BTreeMap::new());
    }
    serde_yaml::from_str(text).map_err(|e| Error::Config(format!("image map file: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(explicit: &[(&str, &str)], dirs: &[&str]) -> ImageMap {
        ImageMap::new(
            explicit
                .iter()
                .map(|(i, p)| (i.to_string(), PathBuf::from(p)))
                .collect(),
            dirs.iter().map(PathBuf::from).collect(),
        )
    }

    #[test]
    fn repository_strips_tag_and_digest_but_not_registry_port() {
        assert_eq!(repository("millpond/testapp:1.0"), "millpond/testapp");
        assert_eq!(repository("millpond/testapp"), "millpond/testapp");
        assert_eq!(
            repository("localhost:5000/millpond/x:dev@sha256:abc"),
            "localhost:5000/millpond/x"
        );
        assert_eq!(repository("localhost:5000/x"), "localhost:5000/x");
        assert_eq!(repository("busybox@sha256:00"), "busybox");
    }

    #[test]
    fn builtin_rule_maps_millpond_images_to_cargo_binaries() {
        assert_eq!(
            builtin_binary_name("millpond/testapp:latest").as_deref(),
            Some("millpond-testapp")
        );
        assert_eq!(
            builtin_binary_name("docker.io/millpond/consumer").as_deref(),
            Some("millpond-consumer")
        );
        assert_eq!(
            builtin_binary_name("ghcr.io/acme/millpond-operator:v0.1.0").as_deref(),
            Some("millpond-operator")
        );
        assert_eq!(builtin_binary_name("nginx:1.27"), None);
        assert_eq!(builtin_binary_name("ghcr.io/acme/millpond-"), None);
        assert_eq!(builtin_binary_name("millpond/Bad"), None);
    }

    #[test]
    fn explicit_entry_wins_and_matches_without_tag() {
        let m = map(&[("millpond/testapp", "/opt/testapp")], &["/bin-dir"]);
        assert_eq!(
            m.resolve("millpond/testapp:v2", |_| true).unwrap(),
            PathBuf::from("/opt/testapp")
        );
        let exact = map(
            &[("busybox:1.36", "/usr/bin/busybox"), ("busybox", "/nope")],
            &[],
        );
        assert_eq!(
            exact.resolve("busybox:1.36", |_| true).unwrap(),
            PathBuf::from("/usr/bin/busybox")
        );
    }

    #[test]
    fn builtin_rule_searches_bin_dirs_in_order() {
        let m = map(&[], &["/release", "/debug"]);
        let found = m.resolve("millpond/testapp:latest", |p| p.starts_with("/debug"));
        assert_eq!(found.unwrap(), PathBuf::from("/debug/millpond-testapp"));
        let first = m.resolve("millpond/testapp", |_| true).unwrap();
        assert_eq!(first, PathBuf::from("/release/millpond-testapp"));
    }

    #[test]
    fn unmapped_images_explain_what_to_do() {
        let m = map(&[("x", "/missing")], &["/release"]);
        let err = m.resolve("nginx:1.27", |_| true).unwrap_err();
        assert!(
            err.contains("has no mapping") && err.contains("--image-map nginx="),
            "{err}"
        );
        let err = m.resolve("millpond/nothere", |_| false).unwrap_err();
        assert!(
            err.contains("millpond-nothere") && err.contains("/release"),
            "{err}"
        );
        let err = m.resolve("x", |_| false).unwrap_err();
        assert!(err.contains("/missing"), "{err}");
        assert!(m.resolve(" ", |_| true).is_err());
    }

    #[test]
    fn flags_and_yaml_parse() {
        assert_eq!(
            parse_flag("busybox=/usr/bin/busybox").unwrap(),
            ("busybox".to_string(), PathBuf::from("/usr/bin/busybox"))
        );
        assert!(parse_flag("busybox").is_err());
        assert!(parse_flag("=x").is_err());
        let m = parse_yaml("busybox: /usr/bin/busybox\n\"millpond/x:1\": ./x\n").unwrap();
        assert_eq!(m["millpond/x:1"], PathBuf::from("./x"));
        assert!(parse_yaml("").unwrap().is_empty());
        assert!(parse_yaml("- a").is_err());
    }
}
