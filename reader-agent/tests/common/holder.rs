//! The test holder the in-process read tests share: a card valid until 2039 (what the QR's dates
//! give) and the trust store of the issuer that signed it.

use cccd_authenticity::test_pki::TestIssuer;
use cccd_authenticity::trust::TrustStore;
use emrtd::lds::build::{Dg13Person, Td1Fields};

pub const ID: &str = "001099012345";

/// The MRZ of a card valid until 2039.
pub fn td1() -> Td1Fields<'static> {
    Td1Fields {
        date_of_expiry: Some("390115"),
        ..Td1Fields::cccd_example()
    }
}

pub fn person() -> Dg13Person<'static> {
    Dg13Person {
        expiry: "15/01/2039",
        issue_date: "10/07/2025",
        ..Dg13Person::example()
    }
}

/// The issuer's CSCA and its CRL.
pub fn trust(issuer: &TestIssuer) -> TrustStore {
    let mut store = TrustStore::new();
    assert!(store.add_der(&issuer.csca.der, "csca.der"));
    store.add_crl_der(&issuer.crl, "csca.crl").unwrap();
    store
}
