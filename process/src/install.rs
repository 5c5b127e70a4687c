//! Finding a ZooKeeper installation and Java, and building the command that
//! runs a server in the foreground.
//!
//! Looked for, in order: `ZOOKEEPER_HOME` (an Apache release folder),
//! `zkServer.sh` on `PATH` (its release folder), and Debian's layout of the
//! `zookeeper` package (`/usr/share/java/zookeeper.jar`). The server is run
//! as `java … QuorumPeerMain zoo.cfg` directly, not through `zkServer.sh`, so
//! the process we start is the server itself and its logs go where we say.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian's `zookeeper` package keeps its jars here.
pub const DEBIAN_JAR_DIR: &str = "/usr/share/java";

/// The main class of a quorum server.
pub const MAIN_CLASS: &str = "org.apache.zookeeper.server.quorum.QuorumPeerMain";

/// How to install ZooKeeper, for error messages.
pub const INSTALL_HINT: &str = "install it with `sudo apt-get install -y zookeeper` (Debian and Ubuntu), or set ZOOKEEPER_HOME to an unpacked Apache ZooKeeper 3.5+ release";

/// A ZooKeeper installation that can run servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installation {
    pub java: PathBuf,
    /// Jars for the server and a logging backend.
    pub classpath: Vec<PathBuf>,
    /// Where it was found, for messages.
    pub origin: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("ZooKeeper is not installed: {INSTALL_HINT}")]
    NotInstalled,
    #[error(
        "ZOOKEEPER_HOME={0} holds no zookeeper-*.jar (looked in it and in its lib/); point it at an unpacked Apache ZooKeeper release"
    )]
    BadHome(PathBuf),
    #[error(
        "Java is not installed (ZooKeeper runs on it): install it with `sudo apt-get install -y default-jre-headless`, or set JAVA_HOME"
    )]
    JavaMissing,
}

/// The environment discovery reads, so tests can supply their own.
pub trait Environment {
    fn var(&self, name: &str) -> Option<OsString>;
}

/// The process's real environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<OsString> {
        std::env::var_os(name)
    }
}

impl Installation {
    /// Finds ZooKeeper and Java on this machine.
    pub fn discover() -> Result<Installation, DiscoverError> {
        Installation::discover_in(&ProcessEnvironment, Path::new(DEBIAN_JAR_DIR))
    }

    /// Discovery against a given environment and Debian jar folder.
    pub fn discover_in(
        env: &dyn Environment,
        debian_jars: &Path,
    ) -> Result<Installation, DiscoverError> {
        let (classpath, origin) = if let Some(home) =
            env.var("ZOOKEEPER_HOME").filter(|h| !h.is_empty())
        {
            let home = PathBuf::from(home);
            let jars = release_jars(&home).ok_or_else(|| DiscoverError::BadHome(home.clone()))?;
            (jars, format!("ZOOKEEPER_HOME={}", home.display()))
        } else if let Some((jars, script)) = find_on_path(env, "zkServer.sh").and_then(|script| {
            let home = fs::canonicalize(&script)
                .ok()?
                .parent()?
                .parent()?
                .to_path_buf();
            Some((release_jars(&home)?, script))
        }) {
            (jars, format!("zkServer.sh at {}", script.display()))
        } else if let Some(jars) = debian_jars_in(debian_jars) {
            (
                jars,
                format!("Debian's zookeeper package ({})", debian_jars.display()),
            )
        } else {
            return Err(DiscoverError::NotInstalled);
        };
        let java = find_java(env).ok_or(DiscoverError::JavaMissing)?;
        Ok(Installation {
            java,
            classpath,
            origin,
        })
    }

    /// The command that runs one server in the foreground on `zoo_cfg`, with
    /// `conf_dir` (holding the logging config from [`write_logging_config`])
    /// first on the classpath. Standard output carries the server's log.
    pub fn server_command(&self, conf_dir: &Path, zoo_cfg: &Path, jvm_flags: &[String]) -> Command {
        let mut classpath = OsString::from(conf_dir.as_os_str());
        for jar in &self.classpath {
            classpath.push(":");
            classpath.push(jar.as_os_str());
        }
        let mut command = Command::new(&self.java);
        command
            .args(jvm_flags)
            .arg(format!("-Dzookeeper.log.dir={}", conf_dir.display()))
            .arg(format!(
                "-Dlog4j.configuration=file:{}",
                conf_dir.join(LOG4J_FILE).display()
            ))
            .arg(format!(
                "-Dlogback.configurationFile={}",
                conf_dir.join(LOGBACK_FILE).display()
            ))
            .arg("-Dzookeeper.jmx.log4j.disable=true")
            .arg("-cp")
            .arg(classpath)
            .arg(MAIN_CLASS)
            .arg(zoo_cfg);
        command
    }
}

/// JVM flags that keep a test or local server small and quick to start.
pub fn small_jvm_flags() -> Vec<String> {
    ["-Xms32m", "-Xmx256m", "-XX:+UseSerialGC", "-Xshare:auto"]
        .into_iter()
        .map(str::to_owned)
        .collect()
}

fn release_jars(home: &Path) -> Option<Vec<PathBuf>> {
    let mut jars = Vec::new();
    for dir in [home.to_path_buf(), home.join("lib")] {
        if let Ok(entries) = fs::read_dir(&dir) {
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "jar"))
                .collect();
            found.sort();
            jars.extend(found);
        }
    }
    jars.iter()
        .any(|j| {
            j.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("zookeeper-") && !n.contains("jute"))
        })
        .then_some(jars)
}

/// Debian splits ZooKeeper's dependencies into separate packages and ships no
/// slf4j backend with it, so a logging backend is added explicitly. Its
/// jar's manifest also leaves out `netty-codec.jar`, which TLS needs: with
/// `sslQuorum=true` the election listener dies on the first connection
/// ("I won't be able to participate in leader election any longer"), and
/// the Netty client factory cannot start; and `netty-resolver.jar`, which a
/// Java client on the same classpath needs to connect over TLS.
fn debian_jars_in(dir: &Path) -> Option<Vec<PathBuf>> {
    let server = dir.join("zookeeper.jar");
    if !server.is_file() {
        return None;
    }
    let mut jars = vec![server];
    jars.extend(
        [
            "slf4j-log4j12.jar",
            "log4j-1.2.jar",
            "netty-codec.jar",
            "netty-resolver.jar",
        ]
        .into_iter()
        .map(|jar| dir.join(jar))
        .filter(|jar| jar.is_file()),
    );
    Some(jars)
}

fn find_java(env: &dyn Environment) -> Option<PathBuf> {
    if let Some(home) = env.var("JAVA_HOME").filter(|h| !h.is_empty()) {
        let java = PathBuf::from(home).join("bin/java");
        if java.is_file() {
            return Some(java);
        }
    }
    find_on_path(env, "java")
}

fn find_on_path(env: &dyn Environment, program: &str) -> Option<PathBuf> {
    let path = env.var("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

pub const LOG4J_FILE: &str = "log4j.properties";
pub const LOGBACK_FILE: &str = "logback.xml";

/// Writes logging configs for both backends ZooKeeper releases use (log4j
/// for Debian's 3.8, logback for Apache's 3.8+), sending INFO and above to
/// standard output.
pub fn write_logging_config(conf_dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(conf_dir)?;
    fs::write(
        conf_dir.join(LOG4J_FILE),
        "log4j.rootLogger=INFO, CONSOLE\n\
         log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender\n\
         log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout\n\
         log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} [myid:%X{myid}] - %-5p [%t:%C{1}@%L] - %m%n\n",
    )?;
    fs::write(
        conf_dir.join(LOGBACK_FILE),
        "<configuration>\n\
         \x20 <appender name=\"CONSOLE\" class=\"ch.qos.logback.core.ConsoleAppender\">\n\
         \x20   <encoder><pattern>%d{ISO8601} [myid:%X{myid}] - %-5p [%t:%C{1}@%L] - %m%n</pattern></encoder>\n\
         \x20 </appender>\n\
         \x20 <root level=\"INFO\"><appender-ref ref=\"CONSOLE\"/></root>\n\
         </configuration>\n",
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    struct FakeEnv(HashMap<&'static str, OsString>);

    impl Environment for FakeEnv {
        fn var(&self, name: &str) -> Option<OsString> {
            self.0.get(name).cloned()
        }
    }

    fn touch(path: &Path) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, b"").unwrap();
    }

    #[test]
    fn zookeeper_home_wins_and_lists_its_jars() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("apache-zookeeper-3.9.3-bin");
        touch(&home.join("lib/zookeeper-3.9.3.jar"));
        touch(&home.join("lib/logback-classic-1.2.13.jar"));
        touch(&dir.path().join("jdk/bin/java"));
        let env = FakeEnv(HashMap::from([
            ("ZOOKEEPER_HOME", home.clone().into_os_string()),
            ("JAVA_HOME", dir.path().join("jdk").into_os_string()),
        ]));
        let found = Installation::discover_in(&env, &dir.path().join("none")).unwrap();
        assert_eq!(found.java, dir.path().join("jdk/bin/java"));
        assert_eq!(found.classpath.len(), 2);
        assert!(found.origin.starts_with("ZOOKEEPER_HOME="));
    }

    #[test]
    fn missing_pieces_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let env = FakeEnv(HashMap::from([("PATH", dir.path().as_os_str().to_owned())]));
        let err = Installation::discover_in(&env, dir.path()).unwrap_err();
        assert!(
            err.to_string().contains("apt-get install -y zookeeper"),
            "{err}"
        );

        touch(&dir.path().join("zookeeper.jar"));
        let err = Installation::discover_in(&env, dir.path()).unwrap_err();
        assert!(matches!(err, DiscoverError::JavaMissing), "{err}");

        let env = FakeEnv(HashMap::from([(
            "ZOOKEEPER_HOME",
            dir.path().join("nope").into_os_string(),
        )]));
        assert!(matches!(
            Installation::discover_in(&env, dir.path()),
            Err(DiscoverError::BadHome(_))
        ));
    }

    #[test]
    fn debian_layout_gets_a_logging_backend_and_the_codec_tls_needs() {
        let dir = tempfile::tempdir().unwrap();
        for jar in [
            "zookeeper.jar",
            "slf4j-log4j12.jar",
            "log4j-1.2.jar",
            "netty-codec.jar",
        ] {
            touch(&dir.path().join(jar));
        }
        touch(&dir.path().join("bin/java"));
        let env = FakeEnv(HashMap::from([(
            "PATH",
            dir.path().join("bin").into_os_string(),
        )]));
        let found = Installation::discover_in(&env, dir.path()).unwrap();
        assert_eq!(found.classpath.len(), 4);
        assert!(found.classpath[3].ends_with("netty-codec.jar"));
        let command = found.server_command(Path::new("/conf"), Path::new("/conf/zoo.cfg"), &[]);
        let args: Vec<_> = command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(args.last().map(String::as_str), Some("/conf/zoo.cfg"));
        assert!(args.contains(&MAIN_CLASS.to_owned()));
    }
}
