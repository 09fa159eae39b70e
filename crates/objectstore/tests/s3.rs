//! Our S3 client against a real S3-compatible server (moto, TLS, IAM credentials enforced),
//! with boto3 as the independent client: each reads what the other wrote, byte for byte, under
//! keys that need encoding; listings page; a wrong secret or an unknown CA is refused and
//! nothing is stored.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "integration test helpers: a failed unwrap is a failed assertion"
)]

use cnpg_objectstore::{Config, Credentials, Error, Secret, Store};
use cnpg_testkit::s3::S3Server;

fn store(server: &S3Server, secret: &str, ca: bool) -> Store {
    Store::new(Config {
        endpoint: server.endpoint.clone(),
        bucket: server.bucket.clone(),
        region: server.region.clone(),
        credentials: Credentials {
            access_key_id: server.access_key_id.clone(),
            secret_access_key: Secret::new(secret.to_owned()),
            session_token: None,
        },
        ca_pem: ca.then(|| std::fs::read(server.ca_file()).unwrap()),
    })
    .unwrap()
}

/// Keys as barman writes them, and keys that test the encoding of paths.
const KEYS: &[&str] = &[
    "pg/wals/0000000100000000/000000010000000000000001.gz",
    "pg/base/20261201T154123/backup.info",
    "pg/with space+plus=equals/ü.tar",
    "pg/a~b_c-d.e",
    "pg/percent%41",
];

#[tokio::test(flavor = "multi_thread")]
async fn round_trips_with_boto3_in_both_directions() {
    let server = S3Server::start().unwrap();
    let ours = store(&server, &server.secret_access_key, true).with_page_size(2);

    for (i, key) in KEYS.iter().enumerate() {
        ours.put(key, format!("object {i}: {key}").into_bytes()).await.unwrap();
    }
    // boto3 sees exactly those objects and bytes.
    let listed = server
        .python(
            "import boto3,os\ns3=boto3.client('s3',endpoint_url=os.environ['S3_ENDPOINT'],verify=os.environ['S3_CA'])\n\
             for o in s3.list_objects_v2(Bucket=os.environ['S3_BUCKET'])['Contents']:\n \
             print(o['Key'] + '\\t' + s3.get_object(Bucket=os.environ['S3_BUCKET'], Key=o['Key'])['Body'].read().decode())",
            &[],
        )
        .unwrap();
    let mut expected: Vec<String> = KEYS
        .iter()
        .enumerate()
        .map(|(i, k)| format!("{k}\tobject {i}: {k}"))
        .collect();
    expected.sort();
    assert_eq!(listed.lines().collect::<Vec<_>>(), expected);

    // boto3 writes; we read, list (three pages of two) and delete.
    server
        .python(
            "import boto3,os\ns3=boto3.client('s3',endpoint_url=os.environ['S3_ENDPOINT'],verify=os.environ['S3_CA'])\n\
             s3.put_object(Bucket=os.environ['S3_BUCKET'], Key='pg/from boto3/é', Body=b'written by boto3')",
            &[],
        )
        .unwrap();
    assert_eq!(
        ours.get("pg/from boto3/é").await.unwrap().as_deref(),
        Some(&b"written by boto3"[..])
    );
    let all = ours.list("pg/").await.unwrap();
    assert_eq!(all.len(), KEYS.len() + 1);
    let mut keys: Vec<&str> = all.iter().map(|o| o.key.as_str()).collect();
    keys.sort_unstable();
    assert!(keys.contains(&"pg/with space+plus=equals/ü.tar"), "{keys:?}");
    assert_eq!(ours.list("pg/wals/").await.unwrap().len(), 1);
    let info = ours.head(KEYS[0]).await.unwrap().unwrap();
    assert_eq!(info.size, format!("object 0: {}", KEYS[0]).len() as u64);
    assert_eq!(ours.head("pg/none").await.unwrap(), None);
    assert_eq!(ours.get("pg/none").await.unwrap(), None);
    ours.delete(KEYS[0]).await.unwrap();
    assert_eq!(ours.get(KEYS[0]).await.unwrap(), None);
    ours.delete(KEYS[0]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_secret_or_an_unknown_ca_stores_nothing() {
    let server = S3Server::start().unwrap();
    let wrong = store(&server, "not the secret", true);
    let err = wrong.put("pg/x", b"x".to_vec()).await.unwrap_err();
    match &err {
        Error::Status { status, code, .. } => {
            assert_eq!(*status, 403, "{err}");
            assert_eq!(code, "SignatureDoesNotMatch", "{err}");
        }
        other => panic!("expected a refusal, got {other}"),
    }
    assert!(!err.to_string().contains("not the secret"), "{err}");

    let untrusted = store(&server, &server.secret_access_key, false);
    let err = untrusted.put("pg/y", b"y".to_vec()).await.unwrap_err();
    assert!(matches!(err, Error::Request { .. }), "{err}");

    let good = store(&server, &server.secret_access_key, true);
    assert!(good.list("pg/").await.unwrap().is_empty(), "nothing was stored");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_object_written_in_parts_is_whole_or_absent_and_streams_back() {
    let server = S3Server::start().unwrap();
    let ours = store(&server, &server.secret_access_key, true);
    // Two parts, the first at S3's 5 MiB minimum, sent out of order.
    let first: Vec<u8> = (0..5 * 1024 * 1024).map(|i: u32| (i % 251) as u8).collect();
    let second = b"the last part may be small".to_vec();
    let key = "pg/base/20261201T154123/data.tar";
    let upload = ours.start_upload(key).await.unwrap();
    let b = upload.put_part(2, second.clone().into()).await.unwrap();
    assert_eq!(ours.head(key).await.unwrap(), None, "nothing visible before completion");
    let a = upload.put_part(1, first.clone().into()).await.unwrap();
    upload.complete(vec![b, a]).await.unwrap();
    let whole = [first.as_slice(), second.as_slice()].concat();

    // boto3 reads the same bytes; so do we, chunk by chunk.
    let md5 = server
        .python(
            "import boto3,os,hashlib\ns3=boto3.client('s3',endpoint_url=os.environ['S3_ENDPOINT'],verify=os.environ['S3_CA'])\n\
             print(hashlib.md5(s3.get_object(Bucket=os.environ['S3_BUCKET'], Key=os.environ['KEY'])['Body'].read()).hexdigest())",
            &[("KEY", key)],
        )
        .unwrap();
    let expected = hex::encode(openssl::hash::hash(openssl::hash::MessageDigest::md5(), &whole).unwrap());
    assert_eq!(md5.trim(), expected);
    let mut download = ours.get_stream(key).await.unwrap().unwrap();
    assert!(download.checked(), "the multipart ETag is checked, part by part");
    let mut read = Vec::new();
    let mut chunks = 0;
    while let Some(chunk) = download.chunk().await.unwrap() {
        read.extend_from_slice(&chunk);
        chunks += 1;
    }
    assert!(read == whole, "streamed other bytes");
    assert!(chunks > 1, "read in chunks, not at once");
    assert!(ours.get_stream("pg/none").await.unwrap().is_none());

    // An aborted upload leaves nothing; completing with a part the store never got fails.
    let aborted = ours.start_upload("pg/aborted").await.unwrap();
    aborted.put_part(1, first.clone().into()).await.unwrap();
    aborted.abort().await.unwrap();
    assert_eq!(ours.head("pg/aborted").await.unwrap(), None);
    let partial = ours.start_upload("pg/partial").await.unwrap();
    let one = partial.put_part(1, first.into()).await.unwrap();
    let never_sent = cnpg_objectstore::Part {
        number: 2,
        md5: "0".repeat(32),
    };
    assert!(partial.complete(vec![one, never_sent]).await.is_err());
    assert_eq!(ours.head("pg/partial").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn objects_are_encrypted_by_the_store_when_asked() {
    let server = S3Server::start().unwrap();
    let ours = store(&server, &server.secret_access_key, true).with_encryption(Some("AES256".into()));
    ours.put("pg/wals/one.gz", b"wal".to_vec()).await.unwrap();
    let upload = ours.start_upload("pg/base/data.tar").await.unwrap();
    let part = upload.put_part(1, b"data".to_vec().into()).await.unwrap();
    upload.complete(vec![part]).await.unwrap();
    let plain = store(&server, &server.secret_access_key, true);
    plain.put("pg/plain", b"plain".to_vec()).await.unwrap();
    let seen = server
        .python(
            "import boto3,os\ns3=boto3.client('s3',endpoint_url=os.environ['S3_ENDPOINT'],verify=os.environ['S3_CA'])\n\
             for k in ['pg/wals/one.gz', 'pg/base/data.tar', 'pg/plain']:\n\
             \x20   print(k, s3.head_object(Bucket=os.environ['S3_BUCKET'], Key=k).get('ServerSideEncryption'))",
            &[],
        )
        .unwrap();
    assert_eq!(
        seen.lines().collect::<Vec<_>>(),
        ["pg/wals/one.gz AES256", "pg/base/data.tar AES256", "pg/plain None"]
    );
    assert_eq!(ours.get("pg/wals/one.gz").await.unwrap().as_deref(), Some(&b"wal"[..]));
}
