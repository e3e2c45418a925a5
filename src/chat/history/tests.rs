use super::*;
use crate::book::BookId;
use crate::chat::message::message_value;
use crate::store::{MessageId, StoredValue};
use serde_json::{json, Value};

fn stored(book_id: u64, seq: u64) -> StoredMessage {
    StoredMessage {
        book_id: BookId(book_id),
        seq,
        value: StoredValue {
            created_ms: 1_795_521_600_000 + seq,
            id: MessageId([seq as u8; 12]),
            user_id: format!("u-{seq}"),
            username: "Père \"Mapple\"".to_owned(),
            content: format!("message {seq}: ünïcode \u{1F4DA} and a\nnewline"),
        },
    }
}

/// A room's store as the tests keep it: every message, oldest first.
#[derive(Default)]
struct Room(Vec<StoredMessage>);

impl Room {
    /// The newest `HISTORY_LEN`, newest first, as `Store::newest` gives them.
    fn newest(&self) -> Vec<StoredMessage> {
        self.0.iter().rev().take(HISTORY_LEN).cloned().collect()
    }

    /// Store `count` more messages; returns them.
    fn append(&mut self, book: u64, count: u64) -> Vec<StoredMessage> {
        let first = self.0.len() as u64 + 1;
        let new: Vec<StoredMessage> = (first..first + count).map(|s| stored(book, s)).collect();
        self.0.extend(new.iter().cloned());
        new
    }
}

/// What a joiner must get for `room`: built from the stored messages through the `Value`
/// encoder (`message_value`), not through the cache's texts.
fn expected_previous(room: &Room) -> Value {
    let messages: Vec<Value> = room.newest().iter().map(message_value).collect();
    json!(["previousMessages", messages])
}

fn served(history: &RoomHistory) -> Value {
    serde_json::from_str(&history.previous_messages_json()).expect("previousMessages is JSON")
}

/// The home's batch: the messages with their texts.
fn record(cache: &HistoryCache, batch: &[StoredMessage], room: &Room, reloads: &mut usize) {
    let texts: Vec<EncodedMessage> = batch.iter().map(encode_message).collect();
    let pairs: Vec<_> = batch.iter().zip(&texts).collect();
    cache.record_batch(&pairs, |_| {
        *reloads += 1;
        Ok::<_, ()>(room.newest())
    });
}

#[test]
fn encoded_messages_equal_the_value_encoding() {
    for seq in [1, 2, 255] {
        let message = stored(2701, seq);
        let text = encode_message(&message);
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            message_value(&message)
        );
        assert_eq!(&*text, message_value(&message).to_string());
    }
}

#[test]
fn the_cached_history_equals_the_stores_newest_fifty_as_batches_arrive() {
    let cache = HistoryCache::default();
    let mut room = Room::default();
    let mut reloads = 0;
    // Batches of different sizes, past 50 messages, the first one of a room never read.
    for count in [1, 3, 1, 17, 40, 1, 2] {
        let batch = room.append(7, count);
        record(&cache, &batch, &room, &mut reloads);
        let history = cache.get(BookId(7)).expect("the home published the room");
        assert_eq!(history.newest_seq(), room.0.len() as u64);
        assert_eq!(served(&history), expected_previous(&room), "after {count}");
        assert!(history.messages().len() <= HISTORY_LEN);
    }
    assert_eq!(room.0.len(), 65);
    assert_eq!(reloads, 1, "only the room's first batch reads the store");
}

#[test]
fn a_batch_mixing_rooms_updates_each_room_in_order() {
    let cache = HistoryCache::default();
    let (mut a, mut b) = (Room::default(), Room::default());
    let mut reloads = 0;
    for _ in 0..3 {
        // Interleaved: a, b, a, b, ...
        let batch_a = a.append(1, 4);
        let batch_b = b.append(2, 4);
        let batch: Vec<StoredMessage> = batch_a
            .into_iter()
            .zip(batch_b)
            .flat_map(|(x, y)| [x, y])
            .collect();
        let texts: Vec<EncodedMessage> = batch.iter().map(encode_message).collect();
        let pairs: Vec<_> = batch.iter().zip(&texts).collect();
        cache.record_batch(&pairs, |book| {
            reloads += 1;
            Ok::<_, ()>(if book == BookId(1) {
                a.newest()
            } else {
                b.newest()
            })
        });
        assert_eq!(
            served(&cache.get(BookId(1)).unwrap()),
            expected_previous(&a)
        );
        assert_eq!(
            served(&cache.get(BookId(2)).unwrap()),
            expected_previous(&b)
        );
    }
    assert_eq!(reloads, 2);
}

#[test]
fn a_gap_is_never_papered_over() {
    let base = RoomHistory::from_stored(&[stored(1, 3), stored(1, 2), stored(1, 1)]);
    let text = |seq| (seq, encode_message(&stored(1, seq)));
    assert!(base.extended(&[text(5)]).is_none(), "4 is missing");
    assert!(base.extended(&[text(4), text(6)]).is_none(), "5 is missing");
    assert!(base.extended(&[text(3)]).is_none(), "3 is there already");
    let next = base.extended(&[text(4), text(5)]).expect("contiguous");
    assert_eq!(next.newest_seq(), 5);
    assert_eq!(next.messages().len(), 5);
}

#[test]
fn a_joiners_store_read_never_replaces_a_newer_published_history() {
    // One room per part, so another room of the same part evicts it.
    let cache = HistoryCache::new(PARTS, MAX_BYTES);
    let mut room = Room::default();
    let stale = room.append(9, 3);
    let stale = Arc::new(RoomHistory::from_stored(
        &stale.iter().rev().cloned().collect::<Vec<_>>(),
    ));
    let newer = room.append(9, 1);
    let mut reloads = 0;
    record(&cache, &newer, &room, &mut reloads);
    // The joiner read the store before the home's write and offers it after the publish.
    assert!(!cache.offer(BookId(9), Arc::clone(&stale)));
    assert_eq!(cache.get(BookId(9)).unwrap().newest_seq(), 4);
    // Even once the room is evicted, the stale read stays out: the watermark remembers.
    let same_part: Vec<u64> = (10..100_000u64)
        .filter(|b| {
            (b.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60)
                == (9u64.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60)
        })
        .take(2)
        .collect();
    for book in same_part {
        assert!(cache.offer(BookId(book), Arc::new(RoomHistory::default())));
    }
    assert!(cache.get(BookId(9)).is_none(), "room 9 was evicted");
    assert!(!cache.offer(BookId(9), stale));
    assert!(cache.get(BookId(9)).is_none());
    // A read at least as new as the published one is kept.
    assert!(cache.offer(
        BookId(9),
        Arc::new(RoomHistory::from_stored(&room.newest()))
    ));
    assert_eq!(cache.get(BookId(9)).unwrap().newest_seq(), 4);
}

#[test]
fn a_failed_reload_drops_the_room_rather_than_keep_an_old_history() {
    let cache = HistoryCache::default();
    let mut room = Room::default();
    let first = room.append(3, 2);
    cache.offer(BookId(3), Arc::new(RoomHistory::from_stored(&[])));
    let mut reloads = 0;
    // Not contiguous with the empty history offered (seq 1 follows 0, so this one is)...
    record(&cache, &first, &room, &mut reloads);
    assert_eq!(reloads, 0);
    // ...then a batch after a gap (as if the cached history had been replaced) must reload;
    // the reload fails, so the room is dropped, not left at seq 2.
    room.append(3, 1);
    let gap = room.append(3, 1);
    let texts: Vec<EncodedMessage> = gap.iter().map(encode_message).collect();
    let pairs: Vec<_> = gap.iter().zip(&texts).collect();
    cache.record_batch(&pairs, |_| Err::<Vec<StoredMessage>, _>("disk on fire"));
    assert!(cache.get(BookId(3)).is_none());
    assert!(
        !cache.offer(BookId(3), Arc::new(RoomHistory::from_stored(&first))),
        "older than published"
    );
}

#[test]
fn the_cache_keeps_within_its_byte_bound() {
    let max_bytes = PARTS * 64 * 1024;
    let cache = HistoryCache::new(MAX_ROOMS, max_bytes);
    for book in 1..=2000u64 {
        let messages: Vec<StoredMessage> = (1..=HISTORY_LEN as u64)
            .rev()
            .map(|s| stored(book, s))
            .collect();
        cache.offer(BookId(book), Arc::new(RoomHistory::from_stored(&messages)));
    }
    let (rooms, bytes) = cache.usage();
    assert!(bytes <= max_bytes, "{bytes} > {max_bytes}");
    assert!(rooms > PARTS && rooms < 2000, "{rooms} rooms");
    // The most recent rooms are the ones kept.
    assert!(cache.get(BookId(2000)).is_some());
    assert!(cache.get(BookId(1)).is_none());
}

#[test]
fn the_cache_keeps_within_its_room_bound() {
    let cache = HistoryCache::new(PARTS * 4, MAX_BYTES);
    for book in 1..=1000u64 {
        cache.offer(BookId(book), Arc::new(RoomHistory::default()));
    }
    assert_eq!(cache.usage().0, PARTS * 4);
}
