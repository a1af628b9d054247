//! The registry's import and look-ups on PostgreSQL (its unit tests use SQLite).

use bhyt_verify::card_number::CardNumber;
use bhyt_verify::coverage::Subject;
use bhyt_verify::db::{self, Schema};
use bhyt_verify::registry::Registry;
use bhyt_verify::registry::generate::{self, Generator, Kind};
use bhyt_verify::registry::import::{ImportOptions, import};
use emrtd::cccd::id_number::CitizenId;

use crate::support;

#[tokio::test]
async fn a_generated_export_imports_and_answers_on_postgresql() {
    let pg = support::postgres().await;
    let pool = db::connect(&pg.database("registry_import").await, 4, Schema::Registry)
        .await
        .unwrap();
    let today = time::macros::date!(2026 - 06 - 01);
    let cards: Vec<_> = Generator::new(11, today).take(2000).collect();
    let mut csv = Vec::new();
    generate::write_csv(&mut csv, cards.clone()).unwrap();
    let report = import(&pool, csv.as_slice(), ImportOptions::default())
        .await
        .unwrap();
    assert_eq!((report.rows_loaded, report.bad_row_count), (2000, 0));

    // A broken row anywhere loads nothing of a second file.
    let mut broken = csv.clone();
    broken.extend_from_slice(b"not,a,card\n");
    assert!(
        import(&pool, broken.as_slice(), ImportOptions::default())
            .await
            .is_err()
    );

    let registry = Registry::new(pool);
    for card in cards
        .iter()
        .filter(|c| c.kind != Kind::ReissuedOld)
        .take(200)
    {
        let record = &card.record;
        let by_card = Subject::Card(CardNumber::parse(&record.card_number).unwrap());
        assert_eq!(
            registry.lookup(&by_card).await.unwrap().as_ref(),
            Some(record)
        );
        if let Some(id) = &record.citizen_id {
            let by_id = Subject::Citizen(CitizenId::parse(id).unwrap());
            let found = registry.lookup(&by_id).await.unwrap().unwrap();
            assert_eq!(found.citizen_id.as_deref(), Some(id.as_str()));
        }
    }
    let unknown = generate::unregistered_citizen_ids(11).next().unwrap();
    assert_eq!(
        registry.lookup(&Subject::Citizen(unknown)).await.unwrap(),
        None
    );
}
