use serde_json::json;

use super::*;

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(&dir.path().join("state.db"), StoreConfig { event_window: 4, watch_queue: 64 }).unwrap()
}

fn value(v: Value) -> Build {
    Box::new(move |_| v)
}

#[tokio::test]
async fn create_get_list_update_delete() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let (r1, _) = store.commit(Batch::new().put("svc/a", Precondition::Absent, value(json!({"n": 1})))).await.unwrap();
    let (r2, _) = store.commit(Batch::new().put("svc/b", Precondition::Absent, value(json!({"n": 2})))).await.unwrap();
    assert_eq!((r1, r2), (1, 2));
    assert!(matches!(
        store.commit(Batch::new().put("svc/a", Precondition::Absent, value(json!({})))).await,
        Err(StoreError::AlreadyExists(_))
    ));
    let (rev, items) = store.list("svc/", None, 0);
    assert_eq!(rev, 2);
    assert_eq!(items.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["svc/a", "svc/b"]);
    assert_eq!((store.count("svc/"), store.count("svc/b"), store.count("pod/")), (2, 1, 0));
    assert_eq!(store.list("svc/", Some("svc/a"), 1).1[0].0, "svc/b");

    assert!(matches!(
        store.commit(Batch::new().put("svc/a", Precondition::AtRevision(2), value(json!({})))).await,
        Err(StoreError::Conflict { expected: 2, actual: 1, .. })
    ));
    let (r3, stored) = store
        .commit(Batch::new().put("svc/a", Precondition::AtRevision(1), Box::new(|rev| json!({"rev": rev}))))
        .await
        .unwrap();
    assert_eq!(r3, 3);
    assert_eq!(*stored[0].as_ref().unwrap().value, json!({"rev": 3}));
    store.commit(Batch::new().delete("svc/a", Precondition::Exists, value(json!({"gone": true})))).await.unwrap();
    assert!(store.get("svc/a").is_none());
    assert_eq!(store.revision(), 4);
}

#[tokio::test]
async fn a_failed_write_in_a_batch_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.commit(Batch::new().put("x", Precondition::Absent, value(json!(1)))).await.unwrap();
    let batch =
        Batch::new().put("y", Precondition::Absent, value(json!(2))).put("x", Precondition::Absent, value(json!(3)));
    assert!(store.commit(batch).await.is_err());
    assert!(store.get("y").is_none());
    assert_eq!(store.revision(), 1);
}

#[tokio::test]
async fn state_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(&dir);
        for i in 0..10 {
            store.commit(Batch::new().put(format!("k/{i}"), Precondition::None, value(json!(i)))).await.unwrap();
        }
        store.commit(Batch::new().delete("k/3", Precondition::Exists, value(json!(null)))).await.unwrap();
    }
    let store = open(&dir);
    assert_eq!(store.revision(), 11);
    assert_eq!(store.list("k/", None, 0).1.len(), 9);
    assert_eq!(store.get("k/4").unwrap().revision, 5);
}

#[tokio::test]
async fn watches_resume_inside_the_window_and_expire_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut early = store.watch(0).unwrap();
    for i in 0..6 {
        store.commit(Batch::new().put(format!("k/{i}"), Precondition::None, value(json!(i)))).await.unwrap();
    }
    for expected in 1..=6 {
        assert_eq!(early.live.recv().await.unwrap().revision, expected);
    }
    // The window holds 4 events: revisions 3..=6, so a watch may start at 2 but not at 1.
    let resumed = store.watch(2).unwrap();
    assert_eq!(resumed.backlog.iter().map(|e| e.revision).collect::<Vec<_>>(), [3, 4, 5, 6]);
    assert!(matches!(store.watch(1), Err(StoreError::Expired { .. })));
    store.commit(Batch::new().delete("k/0", Precondition::Exists, value(json!("bye")))).await.unwrap();
    let event = early.live.recv().await.unwrap();
    assert_eq!(event.event_type, EventType::Deleted);
    assert_eq!(*event.previous.clone().unwrap(), json!(0));
}

#[tokio::test]
async fn concurrent_writers_get_distinct_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.commit(Batch::new().put(format!("k/{i}"), Precondition::Absent, value(json!(i)))).await.unwrap().0
        }));
    }
    let mut revisions = Vec::new();
    for t in tasks {
        revisions.push(t.await.unwrap());
    }
    revisions.sort();
    assert_eq!(revisions, (1..=200).collect::<Vec<_>>());
}
