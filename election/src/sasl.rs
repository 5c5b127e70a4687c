//! Quorum SASL with DIGEST-MD5 (RFC 2831), the client side, sans-IO: what
//! a caller answers to a member's challenge, and the check of the member's
//! final `rspauth`. ZooKeeper runs it when the members require SASL of
//! every caller (`quorum.auth.serverRequireSasl=true`), right after the
//! preamble, in [`crate::wire::AuthPacket`]s; the credentials are the
//! `QuorumLearner` section of the servers' JAAS file ([`jaas_credentials`]).
//! Kerberos (GSSAPI) is not spoken.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use md5::{Digest, Md5};

/// The SASL protocol and server name ZooKeeper's quorum uses: the
/// `digest-uri` is `zookeeper-quorum/zk-quorum-sasl-md5`.
pub const DIGEST_URI: &str = "zookeeper-quorum/zk-quorum-sasl-md5";

/// The JAAS section a learner logs in with, unless
/// `quorum.auth.learner.saslLoginContext` names another.
pub const LEARNER_CONTEXT: &str = "QuorumLearner";

/// A learner's user name and password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a password.
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Why the exchange cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    #[error("the member's challenge is not text")]
    NotText,
    #[error("the member's challenge has no {0}")]
    Missing(&'static str),
    #[error("the member offers qop {0:?}, not auth")]
    Qop(String),
    #[error("the member's challenge asks for algorithm {0:?}, not md5-sess")]
    Algorithm(String),
    #[error("the member's rspauth does not prove it knows the password")]
    BadRspauth,
    #[error("{0}")]
    Jaas(String),
}

/// The client side of one DIGEST-MD5 exchange.
#[derive(Debug)]
pub struct DigestMd5 {
    credentials: Credentials,
    cnonce: String,
    digest_uri: String,
    /// What the member's final message must carry, once we responded.
    rspauth: Option<String>,
}

impl DigestMd5 {
    /// An exchange for ZooKeeper's quorum with a fresh client nonce.
    pub fn new(credentials: Credentials) -> DigestMd5 {
        let mut bytes = [0u8; 24];
        rand::fill(&mut bytes);
        DigestMd5::with(credentials, hex(&bytes), DIGEST_URI)
    }

    /// An exchange with a given client nonce and `digest-uri` (for tests).
    pub fn with(credentials: Credentials, cnonce: String, digest_uri: &str) -> DigestMd5 {
        DigestMd5 {
            credentials,
            cnonce,
            digest_uri: digest_uri.to_owned(),
            rspauth: None,
        }
    }

    /// The digest-response to the member's `challenge`.
    pub fn respond(&mut self, challenge: &[u8]) -> Result<Vec<u8>, SaslError> {
        let text = std::str::from_utf8(challenge).map_err(|_| SaslError::NotText)?;
        let directives = directives(text);
        let nonce = directives.get("nonce").ok_or(SaslError::Missing("nonce"))?;
        let qop = directives.get("qop").map_or("auth", String::as_str);
        if !qop.split(',').any(|q| q.trim() == "auth") {
            return Err(SaslError::Qop(qop.to_owned()));
        }
        let algorithm = directives
            .get("algorithm")
            .ok_or(SaslError::Missing("algorithm"))?;
        if algorithm != "md5-sess" {
            return Err(SaslError::Algorithm(algorithm.clone()));
        }
        let realm = directives.get("realm").cloned().unwrap_or_default();
        let nc = "00000001";
        let c = &self.credentials;
        let secret = Md5::digest(
            [
                latin1_or_utf8(&c.username),
                b":".to_vec(),
                latin1_or_utf8(&realm),
                b":".to_vec(),
                latin1_or_utf8(&c.password),
            ]
            .concat(),
        );
        let a1 = [
            secret.as_slice(),
            format!(":{nonce}:{}", self.cnonce).as_bytes(),
        ]
        .concat();
        let ha1 = hex(&Md5::digest(a1));
        let kd = |a2: &str| {
            let ha2 = hex(&Md5::digest(a2.as_bytes()));
            hex(&Md5::digest(
                format!("{ha1}:{nonce}:{nc}:{}:auth:{ha2}", self.cnonce).as_bytes(),
            ))
        };
        let response = kd(&format!("AUTHENTICATE:{}", self.digest_uri));
        self.rspauth = Some(kd(&format!(":{}", self.digest_uri)));
        let mut out = String::from("charset=utf-8");
        let _ = write!(
            out,
            ",username=\"{}\",realm=\"{}\",nonce=\"{}\",nc={nc},cnonce=\"{}\",digest-uri=\"{}\",maxbuf=65536,response={response},qop=auth",
            quote(&c.username),
            quote(&realm),
            quote(nonce),
            self.cnonce,
            self.digest_uri,
        );
        Ok(out.into_bytes())
    }

    /// Checks the member's final message (`rspauth=…`).
    pub fn verify(&self, last: &[u8]) -> Result<(), SaslError> {
        let text = std::str::from_utf8(last).map_err(|_| SaslError::NotText)?;
        let got = directives(text).get("rspauth").cloned();
        match (&self.rspauth, got) {
            (Some(want), Some(got)) if *want == got => Ok(()),
            _ => Err(SaslError::BadRspauth),
        }
    }
}

/// `key=value` and `key="quoted \"value\""` pairs, comma-separated; the
/// first of a repeated key wins.
fn directives(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
            while chars.peek().is_some_and(|c| *c != ',') {
                chars.next();
            }
        } else {
            while let Some(c) = chars.next_if(|c| *c != ',') {
                value.push(c);
            }
        }
        out.entry(key.trim().to_ascii_lowercase())
            .or_insert_with(|| value.trim().to_owned());
    }
}

fn quote(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}

/// RFC 2831 with `charset=utf-8`: text that fits ISO 8859-1 is hashed in
/// it, anything else in UTF-8 (as Java's client does).
fn latin1_or_utf8(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect::<Option<Vec<u8>>>()
        .unwrap_or_else(|| text.as_bytes().to_vec())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The credentials of the JAAS section `context` in `text` (a
/// `java.security.auth.login.config` file): its `username` and
/// `password` options, which ZooKeeper's `DigestLoginModule` takes.
/// Kerberos and a section without both options are errors naming the fix.
pub fn jaas_credentials(text: &str, context: &str) -> Result<Credentials, SaslError> {
    let err = |what: String| SaslError::Jaas(what);
    let start = find_section(text, context)
        .ok_or_else(|| err(format!("the JAAS file has no section {context} {{ … }};")))?;
    let body = &text[start..];
    let end = body
        .find("};")
        .ok_or_else(|| err(format!("the JAAS section {context} does not end with }};")))?;
    let body = &body[..end];
    if body.contains("Krb5LoginModule") {
        return Err(err(format!(
            "the JAAS section {context} logs in with Kerberos, which zk-sidecar does not speak; quorum SASL with DIGEST-MD5 (DigestLoginModule) is supported"
        )));
    }
    let option = |name: &str| -> Option<String> {
        let at = body
            .match_indices(name)
            .find(|(i, _)| {
                let before = body[..*i].chars().next_back();
                !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
                    && body[i + name.len()..].trim_start().starts_with('=')
            })?
            .0;
        let rest = body[at + name.len()..].trim_start().strip_prefix('=')?;
        let rest = rest.trim_start().strip_prefix('"')?;
        Some(rest[..rest.find('"')?].to_owned())
    };
    match (option("username"), option("password")) {
        (Some(username), Some(password)) => Ok(Credentials { username, password }),
        _ => Err(err(format!(
            "the JAAS section {context} has no username=\"…\" and password=\"…\"; a learner needs both"
        ))),
    }
}

/// Where the body of section `name` starts (after its `{`).
fn find_section(text: &str, name: &str) -> Option<usize> {
    text.match_indices(name).find_map(|(i, _)| {
        let before = text[..i].chars().next_back();
        let boundary = !before.is_some_and(|c| c.is_alphanumeric() || c == '_');
        let after = text[i + name.len()..].trim_start();
        (boundary && after.starts_with('{')).then(|| text.len() - after.len() + 1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 2831, section 4: the example exchange.
    #[test]
    fn the_rfc_example_gives_its_response_and_rspauth() {
        let credentials = Credentials {
            username: "chris".into(),
            password: "secret".into(),
        };
        let mut client = DigestMd5::with(
            credentials,
            "OA6MHXh6VqTrRk".into(),
            "imap/elwood.innosoft.com",
        );
        let challenge = br#"realm="elwood.innosoft.com",nonce="OA6MG9tEQGm2hh",qop="auth",algorithm=md5-sess,charset=utf-8"#;
        let response = String::from_utf8(client.respond(challenge).unwrap()).unwrap();
        assert!(
            response.contains("response=d388dad90d4bbd760a152321f2143af7,"),
            "{response}"
        );
        assert!(response.contains(r#"digest-uri="imap/elwood.innosoft.com""#));
        client
            .verify(b"rspauth=ea40f60335c427b5527b84dbabcdfffd")
            .unwrap();
        assert_eq!(
            client.verify(b"rspauth=00000000000000000000000000000000"),
            Err(SaslError::BadRspauth)
        );
    }

    #[test]
    fn challenges_it_cannot_answer_are_named() {
        let mut client = DigestMd5::new(Credentials {
            username: "u".into(),
            password: "p".into(),
        });
        let cases: [(&[u8], SaslError); 4] = [
            (b"algorithm=md5-sess", SaslError::Missing("nonce")),
            (
                b"nonce=\"n\",qop=\"auth-conf\",algorithm=md5-sess",
                SaslError::Qop("auth-conf".into()),
            ),
            (
                b"nonce=\"n\",algorithm=md5",
                SaslError::Algorithm("md5".into()),
            ),
            (&[0xff, 0xfe], SaslError::NotText),
        ];
        for (challenge, error) in cases {
            assert_eq!(client.respond(challenge), Err(error));
        }
        assert_eq!(
            client.verify(b"rspauth=x"),
            Err(SaslError::BadRspauth),
            "nothing responded yet"
        );
    }

    #[test]
    fn the_learner_section_of_a_jaas_file_gives_its_credentials() {
        let jaas = r#"
QuorumServer {
       org.apache.zookeeper.server.auth.DigestLoginModule required
       user_learner="s3cret";
};
QuorumLearner {
       org.apache.zookeeper.server.auth.DigestLoginModule required
       username="learner"
       password="s3cret";
};
"#;
        let credentials = jaas_credentials(jaas, LEARNER_CONTEXT).unwrap();
        assert_eq!(credentials.username, "learner");
        assert_eq!(credentials.password, "s3cret");
        assert!(!format!("{credentials:?}").contains("s3cret"));
        let missing = jaas_credentials(jaas, "Other").unwrap_err();
        assert!(
            missing.to_string().contains("no section Other"),
            "{missing}"
        );
        let server_only = jaas_credentials(jaas, "QuorumServer").unwrap_err();
        assert!(
            server_only.to_string().contains("username"),
            "{server_only}"
        );
        let kerberos = "QuorumLearner { com.sun.security.auth.module.Krb5LoginModule required; };";
        let kerberos = jaas_credentials(kerberos, LEARNER_CONTEXT).unwrap_err();
        assert!(kerberos.to_string().contains("Kerberos"), "{kerberos}");
    }
}
