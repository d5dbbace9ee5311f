//! The value transformers of kube-apiserver's envelope-less providers, in
//! its storage format: a value is `k8s:enc:<provider>:v1:<key name>:`
//! followed by the provider's ciphertext.
//!
//! - `aesgcm`: a 12-byte random nonce, then the AES-GCM seal (ciphertext and
//!   16-byte tag) with the etcd key as additional authenticated data.
//! - `aescbc`: a 16-byte random IV, then AES-CBC with PKCS#7 padding.
//! - `secretbox`: a 24-byte random nonce, then NaCl's secretbox (16-byte
//!   Poly1305 tag, then the XSalsa20 ciphertext).
//! - `identity`: the value unchanged, and never a value that carries the
//!   reserved `k8s:enc:` prefix.
//!
//! The prefixes and the choice among providers and keys are
//! [`super::prefix`]'s.

use aes_gcm::aead::rand_core::RngCore as _;
use aes_gcm::aead::{AeadInPlace, KeyInit, OsRng};
use aes_gcm::{Aes128Gcm, Aes256Gcm, AesGcm};
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use crypto_secretbox::XSalsa20Poly1305;

/// Prefix reserved for encrypted values; `identity` refuses to read them.
pub const ENCRYPTED_PREFIX: &[u8] = b"k8s:enc:";

type Aes192Gcm = AesGcm<aes::Aes192, aes_gcm::aead::consts::U12>;

const GCM_NONCE: usize = 12;
const CBC_IV: usize = 16;
const SECRETBOX_NONCE: usize = 24;
const TAG: usize = 16;

/// Why a value could not be transformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    #[error("the stored data was shorter than the required size")]
    TooShort,
    #[error("cipher: message authentication failed")]
    Authentication,
    #[error("the stored data is not a multiple of the block size")]
    BlockSize,
    #[error("invalid padding on input")]
    Padding,
    #[error("output array was not large enough for encryption")]
    Secretbox,
    #[error("identity transformer tried to read encrypted data")]
    IdentityReadEncrypted,
    #[error("failed to encrypt: {0}")]
    Seal(&'static str),
    #[error("no matching prefix found")]
    NoMatchingPrefix,
    /// A value under a provider's prefix naming none of its keys.
    #[error("no matching key was found for the provided {0} transformer")]
    NoMatchingKey(&'static str),
    /// Several providers' failures, listed as Go's error aggregates are.
    #[error("[{}]", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))]
    Aggregate(Vec<TransformError>),
}

/// One AES key, by size.
#[derive(Clone)]
enum GcmCipher {
    Aes128(Box<Aes128Gcm>),
    Aes192(Box<Aes192Gcm>),
    Aes256(Box<Aes256Gcm>),
}

/// A transformer under one prefix: a provider with one key.
#[derive(Clone)]
pub enum Transformer {
    Identity,
    AesGcm(GcmCipherKey),
    AesCbc(CbcKey),
    Secretbox(Box<XSalsa20Poly1305>),
}

/// An AES-GCM key.
#[derive(Clone)]
pub struct GcmCipherKey(GcmCipher);

/// An AES-CBC key (16, 24 or 32 bytes).
#[derive(Clone)]
pub struct CbcKey(Vec<u8>);

impl std::fmt::Debug for Transformer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys are never printed.
        f.write_str(match self {
            Transformer::Identity => "identity",
            Transformer::AesGcm(_) => "aesgcm",
            Transformer::AesCbc(_) => "aescbc",
            Transformer::Secretbox(_) => "secretbox",
        })
    }
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    OsRng.fill_bytes(&mut b);
    b
}

impl Transformer {
    /// AES-GCM with a 16, 24 or 32-byte key.
    pub fn aes_gcm(key: &[u8]) -> Option<Self> {
        let c = match key.len() {
            16 => GcmCipher::Aes128(Box::new(Aes128Gcm::new_from_slice(key).ok()?)),
            24 => GcmCipher::Aes192(Box::new(Aes192Gcm::new_from_slice(key).ok()?)),
            32 => GcmCipher::Aes256(Box::new(Aes256Gcm::new_from_slice(key).ok()?)),
            _ => return None,
        };
        Some(Transformer::AesGcm(GcmCipherKey(c)))
    }

    /// AES-CBC with a 16, 24 or 32-byte key.
    pub fn aes_cbc(key: &[u8]) -> Option<Self> {
        matches!(key.len(), 16 | 24 | 32).then(|| Transformer::AesCbc(CbcKey(key.to_vec())))
    }

    /// secretbox with a 32-byte key.
    pub fn secretbox(key: &[u8]) -> Option<Self> {
        let c = XSalsa20Poly1305::new_from_slice(key).ok()?;
        Some(Transformer::Secretbox(Box::new(c)))
    }

    /// The provider's ciphertext of `data` (without the prefix); `aad` is
    /// the etcd key, authenticated by `aesgcm` only.
    pub fn seal(&self, data: &[u8], aad: &[u8]) -> Result<Vec<u8>, TransformError> {
        match self {
            Transformer::Identity => Ok(data.to_vec()),
            Transformer::AesGcm(GcmCipherKey(c)) => {
                let nonce = random::<GCM_NONCE>();
                let mut buf = Vec::with_capacity(GCM_NONCE + data.len() + TAG);
                buf.extend_from_slice(&nonce);
                buf.extend_from_slice(data);
                let n = (&nonce).into();
                let body = &mut buf[GCM_NONCE..];
                let tag = match c {
                    GcmCipher::Aes128(c) => c.encrypt_in_place_detached(n, aad, body),
                    GcmCipher::Aes192(c) => c.encrypt_in_place_detached(n, aad, body),
                    GcmCipher::Aes256(c) => c.encrypt_in_place_detached(n, aad, body),
                }
                .map_err(|_| TransformError::Seal("aes-gcm"))?;
                buf.extend_from_slice(&tag);
                Ok(buf)
            }
            Transformer::AesCbc(CbcKey(key)) => {
                let iv = random::<CBC_IV>();
                let body = match key.len() {
                    16 => cbc_encrypt::<aes::Aes128>(key, &iv, data),
                    24 => cbc_encrypt::<aes::Aes192>(key, &iv, data),
                    _ => cbc_encrypt::<aes::Aes256>(key, &iv, data),
                }
                .ok_or(TransformError::Seal("aes-cbc"))?;
                let mut out = Vec::with_capacity(CBC_IV + body.len());
                out.extend_from_slice(&iv);
                out.extend_from_slice(&body);
                Ok(out)
            }
            Transformer::Secretbox(c) => {
                let nonce = random::<SECRETBOX_NONCE>();
                let mut body = data.to_vec();
                let tag = c
                    .encrypt_in_place_detached((&nonce).into(), b"", &mut body)
                    .map_err(|_| TransformError::Seal("secretbox"))?;
                let mut out = Vec::with_capacity(SECRETBOX_NONCE + TAG + body.len());
                out.extend_from_slice(&nonce);
                out.extend_from_slice(&tag);
                out.extend_from_slice(&body);
                Ok(out)
            }
        }
    }

    /// The plaintext of a provider's ciphertext (the prefix stripped).
    pub fn open(&self, data: &[u8], aad: &[u8]) -> Result<Vec<u8>, TransformError> {
        match self {
            Transformer::Identity => {
                if data.starts_with(ENCRYPTED_PREFIX) {
                    return Err(TransformError::IdentityReadEncrypted);
                }
                Ok(data.to_vec())
            }
            Transformer::AesGcm(GcmCipherKey(c)) => {
                if data.len() < GCM_NONCE + TAG {
                    return Err(TransformError::TooShort);
                }
                let (nonce, rest) = data.split_at(GCM_NONCE);
                let (body, tag) = rest.split_at(rest.len() - TAG);
                let mut buf = body.to_vec();
                let (n, t) = (nonce.into(), tag.into());
                match c {
                    GcmCipher::Aes128(c) => c.decrypt_in_place_detached(n, aad, &mut buf, t),
                    GcmCipher::Aes192(c) => c.decrypt_in_place_detached(n, aad, &mut buf, t),
                    GcmCipher::Aes256(c) => c.decrypt_in_place_detached(n, aad, &mut buf, t),
                }
                .map_err(|_| TransformError::Authentication)?;
                Ok(buf)
            }
            Transformer::AesCbc(CbcKey(key)) => {
                if data.len() < CBC_IV {
                    return Err(TransformError::TooShort);
                }
                let (iv, body) = data.split_at(CBC_IV);
                if body.len() % CBC_IV != 0 {
                    return Err(TransformError::BlockSize);
                }
                match key.len() {
                    16 => cbc_decrypt::<aes::Aes128>(key, iv, body),
                    24 => cbc_decrypt::<aes::Aes192>(key, iv, body),
                    _ => cbc_decrypt::<aes::Aes256>(key, iv, body),
                }
                .ok_or(TransformError::Padding)
            }
            Transformer::Secretbox(c) => {
                if data.len() < SECRETBOX_NONCE + TAG {
                    return Err(TransformError::TooShort);
                }
                let (nonce, rest) = data.split_at(SECRETBOX_NONCE);
                let (tag, body) = rest.split_at(TAG);
                let mut buf = body.to_vec();
                c.decrypt_in_place_detached(nonce.into(), b"", &mut buf, tag.into())
                    .map_err(|_| TransformError::Secretbox)?;
                Ok(buf)
            }
        }
    }
}

fn cbc_encrypt<C>(key: &[u8], iv: &[u8], data: &[u8]) -> Option<Vec<u8>>
where
    C: cbc::cipher::BlockEncryptMut + cbc::cipher::BlockCipher + cbc::cipher::KeyInit,
{
    let enc = cbc::Encryptor::<C>::new_from_slices(key, iv).ok()?;
    Some(enc.encrypt_padded_vec_mut::<Pkcs7>(data))
}

fn cbc_decrypt<C>(key: &[u8], iv: &[u8], data: &[u8]) -> Option<Vec<u8>>
where
    C: cbc::cipher::BlockDecryptMut + cbc::cipher::BlockCipher + cbc::cipher::KeyInit,
{
    let dec = cbc::Decryptor::<C>::new_from_slices(key, iv).ok()?;
    dec.decrypt_padded_vec_mut::<Pkcs7>(data).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::encryption::prefix::tests::{KEY, chain};

    fn all() -> Vec<(&'static str, Transformer)> {
        vec![
            ("aesgcm", Transformer::aes_gcm(&[1; 16]).unwrap()),
            ("aesgcm", Transformer::aes_gcm(&[1; 24]).unwrap()),
            ("aesgcm", Transformer::aes_gcm(&[1; 32]).unwrap()),
            ("aescbc", Transformer::aes_cbc(&[2; 16]).unwrap()),
            ("aescbc", Transformer::aes_cbc(&[2; 32]).unwrap()),
            ("secretbox", Transformer::secretbox(&[3; 32]).unwrap()),
        ]
    }

    #[test]
    fn every_provider_round_trips_under_its_prefix() {
        let plain = br#"{"kind":"Secret","data":{"a":"c2VjcmV0"}}"#;
        for (name, t) in all() {
            let c = chain(vec![(name, "key1", t)]);
            let stored = c.to_storage(plain, KEY).unwrap();
            let prefix = format!("k8s:enc:{name}:v1:key1:");
            assert!(stored.starts_with(prefix.as_bytes()), "{name}");
            assert!(
                !stored.windows(plain.len()).any(|w| w == plain),
                "{name} stores plaintext"
            );
            let (back, stale) = c.from_storage(&stored, KEY).unwrap();
            assert_eq!(back, plain, "{name}");
            assert!(!stale);
            // Two writes of one value differ (random nonce or IV).
            assert_ne!(stored, c.to_storage(plain, KEY).unwrap(), "{name}");
        }
    }

    #[test]
    fn ciphertext_layout_is_upstreams() {
        let plain = b"0123456789abcdef0";
        let body = |name: &str, t: Transformer| {
            let stored = chain(vec![(name, "k", t)]).to_storage(plain, KEY).unwrap();
            stored.len() - format!("k8s:enc:{name}:v1:k:").len()
        };
        // nonce + ciphertext + tag
        assert_eq!(
            body("aesgcm", Transformer::aes_gcm(&[1; 32]).unwrap()),
            12 + 17 + 16
        );
        // IV + two padded blocks
        assert_eq!(
            body("aescbc", Transformer::aes_cbc(&[1; 32]).unwrap()),
            16 + 32
        );
        // nonce + tag + ciphertext
        assert_eq!(
            body("secretbox", Transformer::secretbox(&[1; 32]).unwrap()),
            24 + 16 + 17
        );
        // A block-aligned value still gets a whole block of padding.
        let aligned = chain(vec![(
            "aescbc",
            "k",
            Transformer::aes_cbc(&[1; 32]).unwrap(),
        )])
        .to_storage(&[7; 16], KEY)
        .unwrap();
        assert_eq!(aligned.len() - "k8s:enc:aescbc:v1:k:".len(), 16 + 32);
    }

    /// Values sealed by another AES implementation (nonce or IV chosen,
    /// then laid out as upstream stores them) open here.
    #[test]
    fn known_ciphertexts_of_another_implementation_open() {
        let key: Vec<u8> = (0..32).collect();
        let plain = br#"{"kind":"Secret"}"#;
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        let gcm = hex(
            "6465666768696a6b6c6d6e6f3339b50f178d74a41c313a8ba8001edf3f500b37f9deafe01534555041e9170334",
        );
        let t = Transformer::aes_gcm(&key).unwrap();
        assert_eq!(t.open(&gcm, KEY).unwrap(), plain);
        let cbc = hex(
            "c8c9cacbcccdcecfd0d1d2d3d4d5d6d707d16fe6735d98b78b6abb88e36de898dd1f5563787ad0b13cd77558fa8eee52",
        );
        let t = Transformer::aes_cbc(&key).unwrap();
        assert_eq!(t.open(&cbc, KEY).unwrap(), plain);
    }

    #[test]
    fn a_wrong_key_is_refused() {
        let plain = b"{\"data\":\"x\"}";
        let pairs = [
            (
                "aesgcm",
                Transformer::aes_gcm(&[1; 32]).unwrap(),
                Transformer::aes_gcm(&[9; 32]).unwrap(),
            ),
            (
                "aescbc",
                Transformer::aes_cbc(&[1; 32]).unwrap(),
                Transformer::aes_cbc(&[9; 32]).unwrap(),
            ),
            (
                "secretbox",
                Transformer::secretbox(&[1; 32]).unwrap(),
                Transformer::secretbox(&[9; 32]).unwrap(),
            ),
        ];
        for (name, right, wrong) in pairs {
            let stored = chain(vec![(name, "k", right)])
                .to_storage(plain, KEY)
                .unwrap();
            let read = chain(vec![(name, "k", wrong)]).from_storage(&stored, KEY);
            // CBC without authentication may decrypt to garbage with valid
            // padding; it never yields the plaintext.
            if let Ok((v, _)) = read {
                assert_ne!(v, plain, "{name}");
            }
        }
    }

    #[test]
    fn aesgcm_authenticates_the_etcd_key() {
        let c = chain(vec![(
            "aesgcm",
            "k",
            Transformer::aes_gcm(&[1; 32]).unwrap(),
        )]);
        let stored = c.to_storage(b"{}", KEY).unwrap();
        assert_eq!(
            c.from_storage(&stored, b"/registry/secrets/default/other"),
            Err(TransformError::Authentication)
        );
    }
}
