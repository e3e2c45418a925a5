//! The Lua scripts of the log, and running them in pipelines.
//!
//! Owns the scripts' text (a change of text is a change of SHA1: every node of a cluster must
//! run the same) and the one way they are called: EVALSHA in a pipeline, and for each call
//! that Redis answers NOSCRIPT (its script cache was flushed or it restarted under us) the
//! same call again with the script loaded. Never retries a call that failed otherwise.

use std::sync::LazyLock;

use redis::{Connection, ErrorKind, RedisError, Script, ScriptInvocation, ServerErrorKind, Value};

use super::ClusterError;

/// Append a batch of one partition's entries. KEYS: the stream, the seq hash. ARGV: four per
/// entry: kind (`msg`, `join`, `leave`), book id, then for `msg` the stored value bytes and an
/// empty string, for `join`/`leave` the user id and the connection. Returns, per entry, the
/// room's new sequence (0 for presence) then the stream id. Entries of a batch are appended in
/// the given order with no other writer in between (a script runs alone).
pub(super) static APPEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local out = {}
if #ARGV % 4 ~= 0 then
  return redis.error_reply('ERR rr append: ARGV must hold 4 values per entry')
end
for i = 1, #ARGV, 4 do
  local kind, book = ARGV[i], ARGV[i + 1]
  local seq, id = 0, nil
  if kind == 'msg' then
    seq = redis.call('HINCRBY', KEYS[2], book, 1)
    id = redis.call('XADD', KEYS[1], '*', 'kind', 'msg', 'book', book, 'seq', seq,
                    'body', ARGV[i + 2])
  elseif kind == 'join' or kind == 'leave' then
    id = redis.call('XADD', KEYS[1], '*', 'kind', kind, 'book', book, 'user', ARGV[i + 2],
                    'conn', ARGV[i + 3])
  else
    return redis.error_reply('ERR rr append: unknown kind ' .. kind)
  end
  out[#out + 1] = seq
  out[#out + 1] = id
end
return out
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
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for call in calls {
        pipe.invoke_script(call);
    }
    let answers: Vec<Value> = pipe.query(connection)?;
    if answers.len() != calls.len() {
        return Err(ClusterError::Malformed(format!(
            "{} answers to {} scripts",
            answers.len(),
            calls.len()
        )));
    }
    let mut out = Vec::with_capacity(calls.len());
    for (call, answer) in calls.iter().zip(answers) {
        let answer = match answer {
            Value::ServerError(e) if e.kind() == Some(ServerErrorKind::NoScript) => {
                call.invoke::<Value>(connection).map_err(script_error)?
            }
            Value::ServerError(e) => return Err(ClusterError::Script(e.to_string())),
            other => other,
        };
        out.push(answer);
    }
    Ok(out)
}

fn script_error(e: RedisError) -> ClusterError {
    match e.kind() {
        ErrorKind::Server(_) => ClusterError::Script(e.to_string()),
        _ => ClusterError::from(e),
    }
}
