//! An S3-compatible server on loopback for tests: moto's server mode (from PyPI, pinned in
//! `scripts/lib/s3-server.txt`, installed by scripts/setup.sh) over TLS with its own CA, and
//! with IAM credentials enforced: a wrong secret is refused as S3 would refuse it. One bucket,
//! `backups`, exists. boto3, installed with it, is the independent client tests compare with.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;

use crate::{cache_dir, run, self_signed, wait_until};

/// A running server and the credentials it accepts.
#[derive(Debug)]
pub struct S3Server {
    dir: tempfile::TempDir,
    child: Child,
    /// `https://127.0.0.1:PORT`.
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// Creates the user, its key and policy, and the bucket: the four requests moto serves before
/// it starts enforcing credentials. Prints the key.
const PROVISION: &str = r#"
import boto3, json, os
kw = dict(endpoint_url=os.environ["S3_ENDPOINT"], region_name="us-east-1", verify=os.environ["S3_CA"],
          aws_access_key_id="provisioning", aws_secret_access_key="provisioning")
iam = boto3.client("iam", **kw)
iam.create_user(UserName="cnpg-rs")
key = iam.create_access_key(UserName="cnpg-rs")["AccessKey"]
iam.put_user_policy(UserName="cnpg-rs", PolicyName="all", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
kw.update(aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
boto3.client("s3", **kw).create_bucket(Bucket="backups")
print(key["AccessKeyId"], key["SecretAccessKey"])
"#;

impl S3Server {
    pub fn start() -> anyhow::Result<Self> {
        let venv = cache_dir().join("s3-server");
        let server = venv.join("bin/moto_server");
        anyhow::ensure!(
            server.is_file(),
            "{} is missing: scripts/setup.sh installs the S3 server (moto) there",
            server.display()
        );
        let dir = tempfile::tempdir()?;
        let root = dir.path();
        self_signed(root, "cnpg-rs test S3", "IP:127.0.0.1")?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = std::fs::File::create(root.join("s3.log"))?;
        let child = Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .arg("-c")
            .arg(root.join("cert.pem"))
            .arg("-k")
            .arg(root.join("key.pem"))
            .env("INITIAL_NO_AUTH_ACTION_COUNT", "4")
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .context("failed to start moto_server")?;
        let mut server = Self {
            dir,
            child,
            endpoint: format!("https://127.0.0.1:{port}"),
            bucket: "backups".into(),
            region: "us-east-1".into(),
            access_key_id: String::new(),
            secret_access_key: String::new(),
        };
        anyhow::ensure!(
            wait_until(Duration::from_secs(30), || TcpStream::connect(("127.0.0.1", port))
                .is_ok()),
            "moto_server did not listen within 30 s: {}",
            server.log()
        );
        let out = server.python(PROVISION, &[])?;
        let mut words = out.split_whitespace();
        server.access_key_id = words.next().context("no access key")?.to_owned();
        server.secret_access_key = words.next().context("no secret")?.to_owned();
        Ok(server)
    }

    /// The CA that signed the server's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("s3.log")).unwrap_or_default()
    }

    /// Runs `script` with the server's Python (boto3 importable), `S3_ENDPOINT`, `S3_CA`,
    /// `S3_BUCKET` and the AWS credential variables set, plus `env`; returns its stdout.
    pub fn python(&self, script: &str, env: &[(&str, &str)]) -> anyhow::Result<String> {
        let python = cache_dir().join("s3-server/bin/python");
        let out = run(Command::new(python)
            .arg("-c")
            .arg(script)
            .env("S3_ENDPOINT", &self.endpoint)
            .env("S3_CA", self.ca_file())
            .env("S3_BUCKET", &self.bucket)
            .env("AWS_ACCESS_KEY_ID", &self.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret_access_key)
            .env("AWS_DEFAULT_REGION", &self.region)
            .envs(env.iter().copied()))?;
        Ok(String::from_utf8(out.stdout)?)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
