//! The cluster's log layer (`readrealm_chat::cluster`) against a real `redis-server`
//! (tests/support/redis.rs): one gapless numbering per room whoever appends, one order for
//! every reader, presence in the same order, the partition count checked, trimmed positions
//! refused, Redis stopped or killed answered within the timeouts, and nothing appended lost
//! across a Redis restart from its AOF; rosters kept by joins and leaves and read with the id
//! they are true at (also after a trim emptied the stream), a dead node's readers reaped once,
//! every partition's last id, rooms' counters seeded, appends waiting for replicas.
//! `micro_bench` prints append and read rates.

#[path = "support/redis.rs"]
mod redis_server;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use readrealm_chat::book::BookId;
use readrealm_chat::cluster::partition::log_key;
use readrealm_chat::cluster::{
    partition_of, Append, Appended, ClusterError, Entry, Link, LogEntry, RosterEntry, Settings,
    Snapshot, StreamId,
};
use redis_server::RedisServer;

const PARTITIONS: u32 = 8;

fn settings(redis: &RedisServer, partitions: u32) -> Settings {
    Settings {
        url: redis.url(),
        ca: None,
        partitions,
        connect_timeout: Duration::from_secs(1),
        io_timeout: Duration::from_secs(1),
        min_replicas: 0,
    }
}

fn link(redis: &RedisServer) -> Link {
    Link::connect(settings(redis, PARTITIONS)).expect("connect to the test redis")
}

fn message(book: u64, body: &str) -> Append {
    Append::Message {
        book: BookId(book),
        body: body.as_bytes().to_vec(),
        origin: String::new(),
    }
}

fn join(book: u64, user: &str, username: &str, conn: &str) -> Append {
    Append::Join {
        book: BookId(book),
        user: user.into(),
        username: username.into(),
        conn: conn.into(),
        origin: format!("o-{conn}"),
    }
}

fn leave(book: u64, user: &str, conn: &str) -> Append {
    Append::Leave {
        book: BookId(book),
        user: user.into(),
        conn: conn.into(),
        origin: String::new(),
    }
}

/// `n` distinct books of partition `p`, from 1 up.
fn books_of(p: u32, n: usize) -> Vec<u64> {
    (1..)
        .filter(|b| partition_of(BookId(*b), PARTITIONS) == p)
        .take(n)
        .collect()
}

fn member(book: u64, conn: &str, user: &str, username: &str) -> RosterEntry {
    RosterEntry {
        book: BookId(book),
        conn: conn.into(),
        user: user.into(),
        username: username.into(),
    }
}

/// Every entry of partition `p`, read from the start in pages of `page`.
fn read_all(link: &mut Link, p: u32, page: usize) -> Vec<LogEntry> {
    let mut out: Vec<LogEntry> = Vec::new();
    loop {
        let from = out.last().map_or(StreamId::ZERO, |e| e.id);
        let got = link.read(&[(p, from)], page).expect("read");
        if got.is_empty() {
            return out;
        }
        out.extend(got);
    }
}

#[test]
fn two_nodes_appending_to_one_room_get_one_gapless_numbering_and_one_order() {
    let redis = RedisServer::start();
    let book = 42;
    let other = (1..)
        .find(|b| partition_of(BookId(*b), PARTITIONS) != partition_of(BookId(book), PARTITIONS))
        .unwrap();
    let writers: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|node| {
            let mut link = link(&redis);
            std::thread::spawn(move || {
                let mut appended: Vec<(String, Appended)> = Vec::new();
                for batch in 0..50 {
                    // A turn's batch: this room and another partition's room, in one trip.
                    let entries: Vec<Append> = (0..8)
                        .map(|i| {
                            let room = if i % 4 == 3 { other } else { book };
                            message(room, &format!("{node}-{batch}-{i}-{room}"))
                        })
                        .collect();
                    let answers = link.append(&entries).expect("append");
                    assert_eq!(answers.len(), entries.len());
                    for (entry, answer) in entries.iter().zip(answers) {
                        let Append::Message { body, .. } = entry else {
                            unreachable!()
                        };
                        appended.push((String::from_utf8(body.clone()).unwrap(), answer));
                    }
                }
                appended
            })
        })
        .collect();
    let appended: Vec<(String, Appended)> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();

    let p = partition_of(BookId(book), PARTITIONS);
    let seqs: Vec<u64> = appended
        .iter()
        .filter(|(body, _)| body.ends_with(&format!("-{book}")))
        .map(|(_, a)| a.seq.expect("a message has a sequence"))
        .collect();
    assert_eq!(seqs.len(), 2 * 50 * 6);
    assert_eq!(
        seqs.iter().copied().collect::<BTreeSet<u64>>(),
        (1..=600).collect::<BTreeSet<u64>>(),
        "one gapless numbering, no sequence twice"
    );

    // Both nodes read the room's partition back: the same entries, in the same order, with
    // the sequences in log order, each where its append said.
    let first = read_all(&mut link(&redis), p, 100);
    let second = read_all(&mut link(&redis), p, 37);
    assert_eq!(first, second);
    let room: Vec<(u64, String, StreamId)> = first
        .iter()
        .filter_map(|e| match &e.entry {
            Entry::Message {
                book: b, seq, body, ..
            } if b.get() == book => Some((*seq, String::from_utf8(body.clone()).unwrap(), e.id)),
            _ => None,
        })
        .collect();
    assert_eq!(
        room.iter().map(|r| r.0).collect::<Vec<_>>(),
        (1..=600).collect::<Vec<_>>()
    );
    for (seq, body, id) in &room {
        let (_, answer) = appended.iter().find(|(b, _)| b == body).unwrap();
        assert_eq!(
            (answer.seq, answer.id, answer.partition),
            (Some(*seq), *id, p)
        );
    }
    // The other room has its own numbering, in its own partition.
    let other_seqs: Vec<u64> = read_all(
        &mut link(&redis),
        partition_of(BookId(other), PARTITIONS),
        1000,
    )
    .iter()
    .filter_map(|e| match &e.entry {
        Entry::Message { book: b, seq, .. } if b.get() == other => Some(*seq),
        _ => None,
    })
    .collect();
    assert_eq!(other_seqs, (1..=200).collect::<Vec<_>>());
}

#[test]
fn presence_and_messages_of_a_room_are_in_one_order_for_every_reader() {
    let redis = RedisServer::start();
    let book = BookId(7);
    let mut joiner = link(&redis);
    let mut poster = link(&redis);
    let presence = std::thread::spawn(move || {
        let mut ids = Vec::new();
        for i in 0..200 {
            let entry = if i % 2 == 0 {
                join(
                    book.get(),
                    &format!("u{i}"),
                    &format!("U {i}"),
                    &format!("n1/{i}"),
                )
            } else {
                leave(book.get(), &format!("u{}", i - 1), &format!("n1/{}", i - 1))
            };
            let answer = joiner.append(&[entry]).unwrap();
            assert_eq!(answer[0].seq, None);
            ids.push(answer[0].id);
        }
        ids
    });
    let messages = std::thread::spawn(move || {
        let mut ids = Vec::new();
        for i in 0..100 {
            let answers = poster
                .append(&[message(7, &format!("m{i}a")), message(7, &format!("m{i}b"))])
                .unwrap();
            ids.extend(answers.iter().map(|a| a.id));
        }
        ids
    });
    let presence_ids = presence.join().unwrap();
    let message_ids = messages.join().unwrap();

    let p = partition_of(book, PARTITIONS);
    let first = read_all(&mut link(&redis), p, 64);
    let second = read_all(&mut link(&redis), p, 1000);
    assert_eq!(first, second, "every reader sees one order");
    assert_eq!(first.len(), 400);
    assert!(first.windows(2).all(|w| w[0].id < w[1].id));
    // Each writer's entries are in the log in the order it appended them, where it was told.
    let of_kind = |message: bool| -> Vec<StreamId> {
        first
            .iter()
            .filter(|e| matches!(e.entry, Entry::Message { .. }) == message)
            .map(|e| e.id)
            .collect()
    };
    assert_eq!(of_kind(false), presence_ids);
    assert_eq!(of_kind(true), message_ids);
    let joins: Vec<&str> = first
        .iter()
        .filter_map(|e| match &e.entry {
            Entry::Join { user, .. } => Some(user.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(joins.len(), 100);
    assert_eq!(joins[1], "u2");
    let seqs: Vec<u64> = first
        .iter()
        .filter_map(|e| match &e.entry {
            Entry::Message { seq, .. } => Some(*seq),
            _ => None,
        })
        .collect();
    assert_eq!(seqs, (1..=200).collect::<Vec<_>>());
}

#[test]
fn a_node_with_another_partition_count_is_refused() {
    let redis = RedisServer::start();
    Link::connect(settings(&redis, 8)).expect("the first node sets the count");
    Link::connect(settings(&redis, 8)).expect("a node that agrees");
    match Link::connect(settings(&redis, 16)) {
        Err(e @ ClusterError::PartitionMismatch { redis: 8, ours: 16 }) => {
            assert!(e.to_string().contains("Redis holds 8 partitions"), "{e}");
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a node with 16 partitions joined a cluster of 8"),
    }
}

#[test]
fn reading_from_a_trimmed_position_is_behind_retention() {
    let redis = RedisServer::start();
    let mut link = link(&redis);
    let book = 11;
    let p = partition_of(BookId(book), PARTITIONS);
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(link.append(&[message(book, &format!("{i}"))]).unwrap()[0].id);
        std::thread::sleep(Duration::from_millis(3));
    }
    // Trim everything added before the 4th entry's millisecond.
    let removed = link.trim(ids[3].ms, Duration::ZERO).unwrap();
    assert_eq!(removed, 3);
    for position in [StreamId::ZERO, ids[0], ids[1]] {
        match link.read(&[(p, position)], 100) {
            Err(ClusterError::BehindRetention {
                partition,
                position: at,
                trimmed_through,
            }) => {
                assert_eq!((partition, at, trimmed_through), (p, position, ids[2]));
            }
            other => panic!("from {position}: {other:?}"),
        }
        assert!(matches!(
            link.tail(&[(p, position)], 100, Duration::from_millis(10)),
            Err(ClusterError::BehindRetention { .. })
        ));
    }
    // A node that applied the last trimmed entry is not behind.
    let rest = link.read(&[(p, ids[2])], 100).unwrap();
    assert_eq!(
        rest.iter().map(|e| e.id).collect::<Vec<_>>(),
        ids[3..].to_vec()
    );
    // Trimming by a retention longer than the entries' age removes nothing.
    let now = link.redis_time_ms().unwrap();
    assert_eq!(link.trim(now, Duration::from_secs(3600)).unwrap(), 0);
}

#[test]
fn redis_stopped_or_killed_fails_within_the_timeout_and_a_restart_loses_nothing() {
    let mut redis = RedisServer::start();
    let mut link = link(&redis);
    let book = 5;
    let p = partition_of(BookId(book), PARTITIONS);
    let mut acked: Vec<(String, Appended)> = Vec::new();
    let mut append = |link: &mut Link, n: usize, tag: &str| -> Result<(), ClusterError> {
        for i in 0..n {
            let body = format!("{tag}{i}");
            let answer = link.append(&[message(book, &body)])?;
            acked.push((body, answer[0]));
        }
        Ok(())
    };
    append(&mut link, 50, "before").unwrap();

    // Redis hangs (SIGSTOP): an append fails with a connection error within the timeout.
    let signal = |sig: &str| {
        let status = std::process::Command::new("kill")
            .args([sig, &redis.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    signal("-STOP");
    let started = Instant::now();
    let hung = link.append(&[message(book, "during-stop")]);
    let waited = started.elapsed();
    signal("-CONT");
    assert!(matches!(hung, Err(ClusterError::Connection(_))), "{hung:?}");
    assert!(
        waited < Duration::from_millis(2500),
        "append hung {waited:?}"
    );
    // The link reconnects by itself.
    append(&mut link, 20, "resumed").unwrap();

    // Redis dies: appends and reads fail at once (no hang), again and again.
    redis.kill();
    for _ in 0..3 {
        let started = Instant::now();
        let dead = link.append(&[message(book, "while-dead")]);
        assert!(matches!(dead, Err(ClusterError::Connection(_))), "{dead:?}");
        let read = link.tail(&[(p, StreamId::ZERO)], 10, Duration::from_millis(100));
        assert!(matches!(read, Err(ClusterError::Connection(_))), "{read:?}");
        assert!(started.elapsed() < Duration::from_millis(2500));
    }

    // Back from its AOF: every acknowledged entry is there, and appends resume on the same
    // link, continuing the numbering.
    redis.restart();
    append(&mut link, 30, "after").unwrap();
    let log = read_all(&mut link, p, 1000);
    let in_log: Vec<(String, u64, StreamId)> = log
        .iter()
        .filter_map(|e| match &e.entry {
            Entry::Message { seq, body, .. } => {
                Some((String::from_utf8(body.clone()).unwrap(), *seq, e.id))
            }
            _ => None,
        })
        .collect();
    for (body, answer) in &acked {
        assert!(
            in_log.contains(&(body.clone(), answer.seq.unwrap(), answer.id)),
            "acknowledged {body} lost"
        );
    }
    // The one append that timed out may or may not have landed (Redis ran it after SIGCONT);
    // either way the numbering has no gap.
    assert_eq!(
        in_log.iter().map(|e| e.1).collect::<Vec<_>>(),
        (1..=in_log.len() as u64).collect::<Vec<_>>()
    );
    assert!(in_log.len() == acked.len() || in_log.len() == acked.len() + 1);
}

/// An append with a deadline that Redis runs too late (it was hung past it) is refused there
/// and writes nothing, so a post its node answered `unavailable` never lands afterwards; one
/// run in time is appended as usual.
#[test]
fn an_append_run_after_its_deadline_writes_nothing() {
    let redis = RedisServer::start();
    let mut link = link(&redis);
    let book = 6;
    let p = partition_of(BookId(book), PARTITIONS);
    let now = link.redis_time_ms().unwrap();
    let ok = link
        .append_by(&[message(book, "in time")], Some(now + 5_000))
        .unwrap();
    assert_eq!(ok[0].seq, Some(1));
    let signal = |sig: &str| {
        let status = std::process::Command::new("kill")
            .args([sig, &redis.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    // Hung for longer than the deadline allows: the call times out here, and when Redis
    // resumes it refuses the script.
    signal("-STOP");
    let deadline = link.redis_time_ms().ok();
    assert!(deadline.is_none(), "a hung Redis answers nothing");
    let deadline = now + 300;
    let hung = link.append_by(&[message(book, "too late")], Some(deadline));
    assert!(matches!(hung, Err(ClusterError::Connection(_))), "{hung:?}");
    std::thread::sleep(Duration::from_millis(400));
    signal("-CONT");
    let late = link.append_by(&[message(book, "late")], Some(deadline));
    assert!(matches!(late, Err(ClusterError::Script(_))), "{late:?}");
    let bodies: Vec<String> = read_all(&mut link, p, 100)
        .into_iter()
        .filter_map(|e| match e.entry {
            Entry::Message { body, .. } => Some(String::from_utf8(body).unwrap()),
            _ => None,
        })
        .collect();
    assert_eq!(
        bodies,
        ["in time"],
        "nothing run after its deadline was written"
    );
    let next = link.append_by(&[message(book, "next")], None).unwrap();
    assert_eq!(next[0].seq, Some(2), "the counter did not move either");
}

#[test]
fn dead_nodes_are_named_when_their_heartbeat_expires() {
    let redis = RedisServer::start();
    let mut link = link(&redis);
    link.heartbeat("n1", Duration::from_millis(300)).unwrap();
    link.heartbeat("n2", Duration::from_secs(30)).unwrap();
    assert_eq!(link.expired_nodes().unwrap(), Vec::<String>::new());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(link.expired_nodes().unwrap(), vec!["n1".to_string()]);
    // A heartbeat brings it back; forgetting it stops naming it.
    link.heartbeat("n1", Duration::from_secs(30)).unwrap();
    assert_eq!(link.expired_nodes().unwrap(), Vec::<String>::new());
    link.heartbeat("n1", Duration::from_millis(1)).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(link.expired_nodes().unwrap(), vec!["n1".to_string()]);
    link.forget_node("n1").unwrap();
    assert_eq!(link.expired_nodes().unwrap(), Vec::<String>::new());
}

/// Append and read rates on loopback (one Redis with `appendfsync always`): printed, not
/// asserted beyond reading back everything appended. The goal for a node catching up is
/// ≥ 50,000 entries/s (issue 13).
#[test]
fn micro_bench() {
    let redis = RedisServer::start();
    let mut link = link(&redis);
    let body = "x".repeat(120);
    let batches = 400;
    let started = Instant::now();
    for batch in 0..batches {
        let entries: Vec<Append> = (0..64u64)
            .map(|i| message(1 + (batch * 64 + i) % 500, &body))
            .collect();
        link.append(&entries).unwrap();
    }
    let appended = batches as usize * 64;
    let append_secs = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let mut positions: Vec<(u32, StreamId)> =
        (0..PARTITIONS).map(|p| (p, StreamId::ZERO)).collect();
    let mut read = 0;
    loop {
        let got = link.read(&positions, 1000).unwrap();
        if got.is_empty() {
            break;
        }
        read += got.len();
        for entry in &got {
            if let Some(slot) = positions.iter_mut().find(|(p, _)| *p == entry.partition) {
                slot.1 = entry.id;
            }
        }
    }
    let read_secs = started.elapsed().as_secs_f64();
    assert_eq!(read, appended);
    println!(
        "cluster log micro-bench: appended {appended} entries ({}-byte bodies, batches of 64 over {PARTITIONS} partitions) at {:.0}/s; read them back at {:.0}/s (pages of 1000 per partition)",
        body.len(),
        appended as f64 / append_secs,
        read as f64 / read_secs
    );
}

#[test]
fn tail_waits_for_the_next_entry_and_returns_empty_when_none_came() {
    let redis = RedisServer::start();
    let mut reader = link(&redis);
    let mut writer = link(&redis);
    let book = 3;
    let p = partition_of(BookId(book), PARTITIONS);
    let positions: Vec<(u32, StreamId)> = (0..PARTITIONS).map(|p| (p, StreamId::ZERO)).collect();

    let started = Instant::now();
    assert_eq!(
        reader
            .tail(&positions, 10, Duration::from_millis(200))
            .unwrap(),
        Vec::new()
    );
    assert!(started.elapsed() >= Duration::from_millis(190));

    let post = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        writer.append(&[message(book, "late")]).unwrap()[0]
    });
    let started = Instant::now();
    let got = reader.tail(&positions, 10, Duration::from_secs(5)).unwrap();
    let waited = started.elapsed();
    let appended = post.join().unwrap();
    assert!(waited < Duration::from_secs(2), "woke after {waited:?}");
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].partition, got[0].id), (p, appended.id));
    // A blocking read longer than the I/O timeout (1 s) is not taken for a dead Redis.
    let started = Instant::now();
    assert_eq!(
        reader
            .tail(&[(p, appended.id)], 10, Duration::from_millis(1500))
            .unwrap(),
        Vec::new()
    );
    assert!(started.elapsed() >= Duration::from_millis(1400));
}

#[test]
fn joins_and_leaves_keep_the_roster_and_a_snapshot_is_true_through_its_id() {
    let redis = RedisServer::start();
    let mut link = link(&redis);
    let p = 3;
    let [a, b] = books_of(p, 2)[..] else {
        unreachable!()
    };
    let quiet = (p + 1) % PARTITIONS;
    // A partition that never had an entry: nobody, through 0-0.
    assert_eq!(
        link.snapshot(p).unwrap(),
        Snapshot {
            through: StreamId::ZERO,
            members: Vec::new()
        }
    );

    let batch = vec![
        // One reader with two tabs, one with a newline in the user id, a space in the name.
        join(a, "u1", "Ann", "n1/1"),
        join(a, "u1", "Ann", "n1/2"),
        join(a, "u\n2", "Bo Bo", "n2/7"),
        join(b, "u1", "Ann", "n1/1"),
        // One tab closes; the reader stays by the other.
        leave(a, "u1", "n1/1"),
        // A leave of a connection never joined: appended, the roster unchanged.
        leave(a, "u9", "n3/9"),
    ];
    let answers = link.append(&batch).unwrap();
    let snapshot = link.snapshot(p).unwrap();
    assert_eq!(snapshot.through, answers.last().unwrap().id);
    assert_eq!(
        snapshot.members,
        vec![
            member(a, "n1/2", "u1", "Ann"),
            member(a, "n2/7", "u\n2", "Bo Bo"),
            member(b, "n1/1", "u1", "Ann"),
        ]
    );
    // The log holds every entry as given, the unknown leave included.
    let log = read_all(&mut link, p, 100);
    assert_eq!(log.len(), batch.len());
    assert_eq!(
        log[2].entry,
        Entry::Join {
            book: BookId(a),
            user: "u\n2".into(),
            username: "Bo Bo".into(),
            conn: "n2/7".into(),
            origin: "o-n2/7".into(),
        }
    );
    assert_eq!(
        log[5].entry,
        Entry::Leave {
            book: BookId(a),
            user: "u9".into(),
            conn: "n3/9".into(),
            origin: String::new(),
        }
    );

    // A message moves `through` too (the roster is true at any later id until presence).
    let posted = link
        .append(&[Append::Message {
            book: BookId(b),
            body: vec![0, 255, 10],
            origin: "n1/1#4".into(),
        }])
        .unwrap();
    let snapshot = link.snapshot(p).unwrap();
    assert_eq!(snapshot.through, posted[0].id);
    assert_eq!(snapshot.members.len(), 3);
    let log = read_all(&mut link, p, 100);
    assert_eq!(
        log.last().unwrap().entry,
        Entry::Message {
            book: BookId(b),
            seq: 1,
            body: vec![0, 255, 10],
            origin: "n1/1#4".into(),
        }
    );
    // The last tabs close: nobody left.
    link.append(&[
        leave(a, "u1", "n1/2"),
        leave(a, "u\n2", "n2/7"),
        leave(b, "u1", "n1/1"),
    ])
    .unwrap();
    assert_eq!(link.snapshot(p).unwrap().members, Vec::new());
    assert_eq!(link.snapshot(quiet).unwrap().through, StreamId::ZERO);
}

#[test]
fn through_and_last_ids_stay_right_after_a_trim_emptied_the_stream() {
    let redis = RedisServer::start();
    let mut link = link(&redis);
    assert_eq!(link.last_ids().unwrap(), vec![StreamId::ZERO; 8]);
    let p = 5;
    let book = books_of(p, 1)[0];
    let other = books_of(6, 1)[0];
    let answers = link
        .append(&[
            join(book, "u1", "Ann", "n1/1"),
            message(other, "elsewhere"),
            message(book, "hello"),
        ])
        .unwrap();
    let last = answers[2].id;
    let mut expected = vec![StreamId::ZERO; 8];
    expected[5] = last;
    expected[6] = answers[1].id;
    assert_eq!(link.last_ids().unwrap(), expected);

    // Trim everything: the stream is empty, its last id is still the one generated.
    std::thread::sleep(Duration::from_millis(3));
    let now = link.redis_time_ms().unwrap();
    assert_eq!(link.trim(now, Duration::ZERO).unwrap(), 3);
    assert!(matches!(
        link.read(&[(p, StreamId::ZERO)], 10),
        Err(ClusterError::BehindRetention { trimmed_through, .. }) if trimmed_through == last
    ));
    let snapshot = link.snapshot(p).unwrap();
    assert_eq!(snapshot.through, last);
    assert_eq!(snapshot.members, vec![member(book, "n1/1", "u1", "Ann")]);
    assert_eq!(link.last_ids().unwrap(), expected);
    // A node loading this snapshot reads on from `through`: not behind, nothing new.
    assert_eq!(link.read(&[(p, snapshot.through)], 10).unwrap(), Vec::new());
}

#[test]
fn a_reap_leaves_each_of_a_nodes_connections_once_and_only_that_nodes() {
    let redis = RedisServer::start();
    let mut link = link(&redis);
    // n1's readers in rooms of three partitions (two rooms of 0, one of 4, one of 7); n10's
    // and n2's must be left alone.
    let rooms = [books_of(0, 2), books_of(4, 1), books_of(7, 1)].concat();
    let mut joins = vec![
        join(rooms[0], "u1", "Ann", "n1/1"),
        join(rooms[0], "u2", "Bo", "n1/2"),
        join(rooms[1], "u1", "Ann", "n1/1"),
        join(rooms[2], "u3", "Cy", "n1/3"),
        join(rooms[3], "u4", "Di", "n1/gone"),
        join(rooms[0], "u5", "Ed", "n10/1"),
        join(rooms[2], "u6", "Flo", "n2/1"),
    ];
    // n1/gone already left: no second leave for it.
    joins.push(leave(rooms[3], "u4", "n1/gone"));
    link.append(&joins).unwrap();
    link.heartbeat("n1", Duration::from_millis(1)).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(link.expired_nodes().unwrap(), vec!["n1".to_string()]);
    let before = link.last_ids().unwrap();

    // Two survivors reap n1 at once: its leaves are appended once in all.
    let racers: Vec<_> = (0..2)
        .map(|_| {
            let mut link = self::link(&redis);
            std::thread::spawn(move || link.reap("n1").unwrap())
        })
        .collect();
    let reaped: u64 = racers.into_iter().map(|r| r.join().unwrap()).sum();
    assert_eq!(reaped, 4);
    let mut leaves = Vec::new();
    for (p, from) in before.iter().enumerate() {
        for e in link.read(&[(p as u32, *from)], 100).unwrap() {
            match e.entry {
                Entry::Leave {
                    book,
                    user,
                    conn,
                    origin,
                } => leaves.push((book.get(), user, conn, origin)),
                other => panic!("a reap appended {other:?}"),
            }
        }
    }
    leaves.sort();
    let mut expected = vec![
        (
            rooms[0],
            "u1".to_string(),
            "n1/1".to_string(),
            String::new(),
        ),
        (rooms[0], "u2".into(), "n1/2".into(), String::new()),
        (rooms[1], "u1".into(), "n1/1".into(), String::new()),
        (rooms[2], "u3".into(), "n1/3".into(), String::new()),
    ];
    expected.sort();
    assert_eq!(leaves, expected);
    // Only the other nodes' readers remain; n1 is no longer named.
    assert_eq!(
        link.snapshot(0).unwrap().members,
        vec![member(rooms[0], "n10/1", "u5", "Ed")]
    );
    assert_eq!(
        link.snapshot(4).unwrap().members,
        vec![member(rooms[2], "n2/1", "u6", "Flo")]
    );
    assert_eq!(link.snapshot(7).unwrap().members, Vec::new());
    assert_eq!(link.expired_nodes().unwrap(), Vec::<String>::new());

    // A second reap appends nothing.
    let after = link.last_ids().unwrap();
    assert_eq!(link.reap("n1").unwrap(), 0);
    assert_eq!(link.last_ids().unwrap(), after);
    // A reader of n1 that joins again (n1 came back) is reaped again next time.
    link.append(&[join(rooms[1], "u1", "Ann", "n1/5")]).unwrap();
    assert_eq!(link.reap("n1").unwrap(), 1);
}

#[test]
fn seeding_raises_a_rooms_counter_and_never_lowers_it() {
    let redis = RedisServer::start();
    let mut link = link(&redis);
    let seq_of = |link: &mut Link, book: u64| link.append(&[message(book, "m")]).unwrap()[0].seq;
    // A room with no counter yet takes the seed.
    link.seed_seq(BookId(10), 41).unwrap();
    assert_eq!(seq_of(&mut link, 10), Some(42));
    // A lower seed changes nothing (9 is above "42" as text, not as a number), nor an equal.
    link.seed_seq(BookId(10), 9).unwrap();
    assert_eq!(seq_of(&mut link, 10), Some(43));
    link.seed_seq(BookId(10), 43).unwrap();
    assert_eq!(seq_of(&mut link, 10), Some(44));
    // A higher one raises it.
    link.seed_seq(BookId(10), 100).unwrap();
    assert_eq!(seq_of(&mut link, 10), Some(101));
    // Other rooms keep their own counters.
    assert_eq!(seq_of(&mut link, 11), Some(1));
    assert!(matches!(
        link.seed_seq(BookId(12), u64::MAX),
        Err(ClusterError::Redis(_))
    ));
    assert_eq!(seq_of(&mut link, 12), Some(1));
}

#[test]
fn appends_wait_for_replicas_and_say_so_when_too_few_acknowledge() {
    let redis = RedisServer::start();
    let io_timeout = Duration::from_millis(300);
    let waiting = |replicas: u32| {
        Link::connect(Settings {
            io_timeout,
            min_replicas: replicas,
            ..settings(&redis, PARTITIONS)
        })
        .unwrap()
    };
    let book = 21;
    let p = partition_of(BookId(book), PARTITIONS);

    // No replica at all: the append is refused within the timeout, but it is in the log.
    let mut one = waiting(1);
    let started = Instant::now();
    let refused = one.append(&[message(book, "unreplicated")]);
    let waited = started.elapsed();
    match &refused {
        Err(e @ ClusterError::Replicas { wanted: 1, got: 0 }) => {
            assert!(e.to_string().contains("not on enough replicas"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_millis(1500),
        "refused after {waited:?}"
    );
    assert_eq!(read_all(&mut link(&redis), p, 10).len(), 1);

    // With a replica: acknowledged, and the replica holds the entry when the append returns.
    let mut replica = redis.start_replica();
    let answers = one.append(&[message(book, "replicated")]).unwrap();
    assert_eq!(answers[0].seq, Some(2));
    assert_eq!(
        replica.command(&["XLEN", &log_key(p)]).as_deref(),
        Some("2")
    );
    // Two wanted, one there.
    assert!(matches!(
        waiting(2).append(&[message(book, "half")]),
        Err(ClusterError::Replicas { wanted: 2, got: 1 })
    ));

    // The replica dies: refused again, on the same link.
    replica.kill();
    assert!(matches!(
        one.append(&[message(book, "orphan")]),
        Err(ClusterError::Replicas { wanted: 1, got: 0 })
    ));
    assert_eq!(read_all(&mut link(&redis), p, 10).len(), 4);
}
