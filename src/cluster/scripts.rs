//! The Lua scripts of the log, and running them in pipelines.
//!
//! Owns the scripts' text (a change of text is a change of SHA1: every node of a cluster must
//! run the same) and the one way they are called: EVALSHA in a pipeline, and for each call
//! that Redis answers NOSCRIPT (its script cache was flushed or it restarted under us) the
//! same call again with the script loaded. Never retries a call that failed otherwise.

use std::sync::LazyLock;

use redis::{Connection, ErrorKind, RedisError, Script, ScriptInvocation, ServerErrorKind, Value};

use super::ClusterError;

/// Append a batch of one partition's entries, keeping the roster. KEYS: the stream, the seq
/// hash, the roster hash, the last-id key, then the `conns:<node>` sets the batch's presence
/// entries name. ARGV: first a deadline (Unix ms of Redis's `TIME`; `0` for none: a call
/// that runs later is refused before writing anything), then per entry: `msg book body origin` | `join book user username conn
/// origin k` | `leave book user conn origin k`, where `k` is the index in KEYS of the entry's
/// node's `conns` set. A message takes the room's next sequence (`HINCRBY`); a join sets
/// `roster["<book> <conn>"] = "<user>\n<username>"` and adds the field to its node's set; a
/// leave removes both (whether or not they were there); each entry is then XADDed (`origin`
/// only when not empty) and the last id is recorded. Returns, per entry, the room's new
/// sequence (0 for presence) then the stream id. The arguments are checked before anything is
/// written; the batch runs alone (no other writer in between).
pub(super) static APPEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local log, seqs, roster, last = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local widths = {msg = 4, join = 7, leave = 6}
local deadline = tonumber(ARGV[1]) or 0
if deadline > 0 then
  local now = redis.call('TIME')
  local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  if now_ms > deadline then
    return redis.error_reply('ERR rr append: past its deadline ' .. ARGV[1])
  end
end
local i = 2
while i <= #ARGV do
  local width = widths[ARGV[i]]
  if not width then
    return redis.error_reply('ERR rr append: unknown kind ' .. tostring(ARGV[i]))
  end
  if i + width - 1 > #ARGV then
    return redis.error_reply('ERR rr append: an entry is cut short')
  end
  if width > 4 and not KEYS[tonumber(ARGV[i + width - 1]) or 0] then
    return redis.error_reply('ERR rr append: no conns key for an entry')
  end
  i = i + width
end
local function add(fields, origin)
  if origin ~= '' then
    fields[#fields + 1] = 'origin'
    fields[#fields + 1] = origin
  end
  return redis.call('XADD', log, '*', unpack(fields))
end
local out = {}
local id = nil
i = 2
while i <= #ARGV do
  local kind, book = ARGV[i], ARGV[i + 1]
  local seq = 0
  if kind == 'msg' then
    seq = redis.call('HINCRBY', seqs, book, 1)
    id = add({'kind', 'msg', 'book', book, 'seq', seq, 'body', ARGV[i + 2]}, ARGV[i + 3])
    i = i + 4
  elseif kind == 'join' then
    local user, username, conn = ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
    local field = book .. ' ' .. conn
    redis.call('HSET', roster, field, user .. '\n' .. username)
    redis.call('SADD', KEYS[tonumber(ARGV[i + 6])], field)
    id = add({'kind', 'join', 'book', book, 'user', user, 'username', username, 'conn', conn},
             ARGV[i + 5])
    i = i + 7
  else
    local user, conn = ARGV[i + 2], ARGV[i + 3]
    local field = book .. ' ' .. conn
    redis.call('HDEL', roster, field)
    redis.call('SREM', KEYS[tonumber(ARGV[i + 5])], field)
    id = add({'kind', 'leave', 'book', book, 'user', user, 'conn', conn}, ARGV[i + 4])
    i = i + 6
  end
  out[#out + 1] = seq
  out[#out + 1] = id
end
if id then
  redis.call('SET', last, id)
end
return out
"#,
    )
});

/// Reap a dead node's readers from one partition. KEYS: the stream, the roster hash, the
/// node's `conns` set, the last-id key. For every field of the set (sorted, so every run
/// appends in one order) that the roster holds: remove it from the roster and XADD a leave
/// (`book`, `user`, `conn`, no origin); then delete the set and record the last id. Returns
/// how many leaves were appended (0 on a second run: the set is gone). A field or roster value
/// this layer did not write is refused before anything is written.
pub(super) static REAP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local log, roster, conns, last = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local fields = redis.call('SMEMBERS', conns)
table.sort(fields)
local leaves = {}
for _, field in ipairs(fields) do
  local value = redis.call('HGET', roster, field)
  if value then
    local book, conn = string.match(field, '^(%d+) (.*)$')
    local user = string.match(value, '^(.*)\n')
    if not book or not user then
      return redis.error_reply('ERR rr reap: not a roster entry: ' .. field)
    end
    leaves[#leaves + 1] = {field, book, user, conn}
  end
end
local id = nil
for _, leave in ipairs(leaves) do
  redis.call('HDEL', roster, leave[1])
  id = redis.call('XADD', log, '*', 'kind', 'leave', 'book', leave[2], 'user', leave[3],
                  'conn', leave[4])
end
redis.call('DEL', conns)
if id then
  redis.call('SET', last, id)
end
return #leaves
"#,
    )
});

/// A partition's roster with the log position it is true at. KEYS: the last-id key, the
/// roster hash. Returns `{last id or '0-0', HGETALL roster}`, read at one instant.
pub(super) static SNAPSHOT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
return {redis.call('GET', KEYS[1]) or '0-0', redis.call('HGETALL', KEYS[2])}
"#,
    )
});

/// Raise a room's counter to a sequence, never lower it. KEYS: the seq hash. ARGV: the book
/// id, the sequence (canonical decimal). Compares as decimal digit strings (exact for any
/// 64-bit value, which Lua's doubles are not). Returns 1 if raised, else 0.
pub(super) static SEED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local held = redis.call('HGET', KEYS[1], ARGV[1])
local want = ARGV[2]
if held and not string.match(held, '^%d+$') then
  return redis.error_reply('ERR rr seed: the counter holds ' .. held)
end
if held then
  held = string.gsub(held, '^0+(%d)', '%1')
end
if not held or #want > #held or (#want == #held and want > held) then
  redis.call('HSET', KEYS[1], ARGV[1], want)
  return 1
end
return 0
"#,
    )
});

/// Read one partition after a position, atomically with how far it was trimmed. KEYS: the
/// stream, its trimmed-through key. ARGV: the position (exclusive), the most entries to
/// return. Returns `{trimmed-through, entries}` (`0-0` if never trimmed), entries as XRANGE
/// gives them.
pub(super) static READ: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local trimmed = redis.call('GET', KEYS[2]) or '0-0'
return {trimmed, redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])}
"#,
    )
});

/// Trim one partition by age, recording the newest entry removed. KEYS: the stream, its
/// trimmed-through key. ARGV: the horizon (a stream id; entries below it go). Returns how many
/// entries were removed. XTRIM alone leaves no trace a reader could check (Redis 7.0's
/// `max-deleted-entry-id` counts XDEL only), hence the key, set in the same atomic step.
pub(super) static TRIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local last = redis.call('XREVRANGE', KEYS[1], '(' .. ARGV[1], '-', 'COUNT', 1)
if #last == 0 then
  return 0
end
redis.call('SET', KEYS[2], last[1][1])
return redis.call('XTRIM', KEYS[1], 'MINID', '=', ARGV[1])
"#,
    )
});

/// Load every script on a new connection, so the pipelines' EVALSHA finds them.
pub(super) fn load_all(connection: &mut Connection) -> Result<(), ClusterError> {
    redis::pipe()
        .load_script(&APPEND)
        .ignore()
        .load_script(&READ)
        .ignore()
        .load_script(&TRIM)
        .ignore()
        .load_script(&REAP)
        .ignore()
        .load_script(&SNAPSHOT)
        .ignore()
        .load_script(&SEED)
        .ignore()
        .exec(connection)?;
    Ok(())
}

/// Run `calls` in one pipeline (EVALSHA each), one result per call in order. A call answered
/// NOSCRIPT is run again alone with its script loaded (EVALSHA then SCRIPT LOAD and EVALSHA,
/// `ScriptInvocation::invoke`): NOSCRIPT means it did not run. Another error of a call is a
/// `Script` error.
pub(super) fn run(
    connection: &mut Connection,
    calls: &[ScriptInvocation<'_>],
) -> Result<Vec<Value>, ClusterError> {
    Ok(run_then_wait(connection, calls, None)?.0)
}

/// As [`run`], then, with `wait = Some((replicas, timeout_ms))`, `WAIT replicas timeout_ms` at
/// the end of the same pipeline (again after any call re-run for NOSCRIPT, so it covers every
/// write): the second value is how many replicas acknowledged them (`None` without a wait).
/// The caller's read timeout must outlast `timeout_ms`.
pub(super) fn run_then_wait(
    connection: &mut Connection,
    calls: &[ScriptInvocation<'_>],
    wait: Option<(u32, u64)>,
) -> Result<(Vec<Value>, Option<i64>), ClusterError> {
    let wait_cmd = wait.map(|(replicas, timeout_ms)| {
        let mut cmd = redis::cmd("WAIT");
        cmd.arg(replicas).arg(timeout_ms.max(1));
        cmd
    });
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for call in calls {
        pipe.invoke_script(call);
    }
    if let Some(cmd) = &wait_cmd {
        pipe.add_command(cmd.clone());
    }
    let mut answers: Vec<Value> = pipe.query(connection)?;
    let expected = calls.len() + usize::from(wait_cmd.is_some());
    if answers.len() != expected {
        return Err(ClusterError::Malformed(format!(
            "{} answers to {expected} commands",
            answers.len(),
        )));
    }
    let mut acknowledged = if wait_cmd.is_some() {
        answers.pop().map(replicas_answer).transpose()?
    } else {
        None
    };
    let mut rerun = false;
    let mut out = Vec::with_capacity(calls.len());
    for (call, answer) in calls.iter().zip(answers) {
        let answer = match answer {
            Value::ServerError(e) if e.kind() == Some(ServerErrorKind::NoScript) => {
                rerun = true;
                call.invoke::<Value>(connection).map_err(script_error)?
            }
            Value::ServerError(e) => return Err(ClusterError::Script(e.to_string())),
            other => other,
        };
        out.push(answer);
    }
    if let (true, Some(cmd)) = (rerun, &wait_cmd) {
        acknowledged = Some(replicas_answer(cmd.query::<Value>(connection)?)?);
    }
    Ok((out, acknowledged))
}

/// WAIT's answer: the number of replicas that acknowledged.
fn replicas_answer(answer: Value) -> Result<i64, ClusterError> {
    match answer {
        Value::Int(n) => Ok(n),
        Value::ServerError(e) => Err(ClusterError::Redis(format!("WAIT: {e}"))),
        other => Err(ClusterError::Malformed(format!("WAIT answered {other:?}"))),
    }
}

fn script_error(e: RedisError) -> ClusterError {
    match e.kind() {
        ErrorKind::Server(_) => ClusterError::Script(e.to_string()),
        _ => ClusterError::from(e),
    }
}
