//! Reading a member's `zoo.cfg` (with the dynamic file it may name) and its
//! `myid` file from disk, and the servers' JAAS file for quorum SASL.
//! Interpretation lives in `zk-ensemble` and `zk-election`.

use std::fs;
use std::path::{Path, PathBuf};

use zk_election::sasl::{Credentials, SaslError, jaas_credentials};
use zk_ensemble::ZooCfg;
use zk_ensemble::zoocfg::ParseErrors;

/// Why a config could not be loaded; [`LoadError::exit_code`] maps it to the
/// documented exit codes.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoadError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {}", path.display(), errors.0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    Parse { path: PathBuf, errors: ParseErrors },
    #[error("{}: {source}", path.display())]
    Jaas {
        path: PathBuf,
        #[source]
        source: SaslError,
    },
}

impl LoadError {
    /// 2 when a file cannot be read, 1 when it is invalid.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            LoadError::Read { .. } => 2,
            LoadError::Parse { .. } | LoadError::Jaas { .. } => 1,
        }
    }
}

pub(crate) fn read(path: &Path) -> Result<String, LoadError> {
    fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The learner's credentials for quorum SASL: the section `context` of
/// the servers' JAAS file `path`.
pub(crate) fn learner_credentials(path: &Path, context: &str) -> Result<Credentials, LoadError> {
    jaas_credentials(&read(path)?, context).map_err(|source| LoadError::Jaas {
        path: path.to_owned(),
        source,
    })
}

/// Loads `zoo.cfg` and merges the server lines of its `dynamicConfigFile`.
/// A relative dynamic path is looked up beside the config first, then in the
/// working directory (where ZooKeeper itself would look).
pub(crate) fn load(path: &Path) -> Result<ZooCfg, LoadError> {
    let mut cfg = ZooCfg::parse(&read(path)?).map_err(|errors| LoadError::Parse {
        path: path.to_owned(),
        errors,
    })?;
    if let Some(dynamic) = cfg.dynamic_config_file().map(PathBuf::from) {
        let beside = path.parent().map(|dir| dir.join(&dynamic));
        let dynamic = match beside {
            Some(beside) if dynamic.is_relative() && beside.exists() => beside,
            _ => dynamic,
        };
        let text = read(&dynamic)?;
        cfg.merge_dynamic(&text)
            .map_err(|errors| LoadError::Parse {
                path: dynamic,
                errors,
            })?;
    }
    Ok(cfg)
}

/// The config version ZooKeeper gives a dynamic config file: the hex after
/// the last `.` of its name (`zoo.cfg.dynamic.100000000`), as
/// `QuorumPeerConfig.getVersionFromFilename`; 0 for a static config.
pub(crate) fn config_version(cfg: &ZooCfg) -> u64 {
    cfg.dynamic_config_file()
        .and_then(|path| path.rsplit_once('.'))
        .and_then(|(_, hex)| u64::from_str_radix(hex, 16).ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_the_dynamic_files_suffix() {
        let version = |text: &str| config_version(&ZooCfg::parse(text).unwrap());
        assert_eq!(
            version("dynamicConfigFile=/conf/zoo.cfg.dynamic.100000000"),
            0x1_0000_0000
        );
        assert_eq!(version("dynamicConfigFile=zoo.cfg.dynamic"), 0);
        assert_eq!(version("tickTime=2000"), 0);
    }
}
