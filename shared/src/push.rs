//! Pushing a message to the WebSocket connections subscribed to a job, over the
//! [`Connections`] and [`Pusher`] ports: what status's stream handler does for every job,
//! query and chat-message change. Not here: what the message says (status's `stream`), or the
//! `PostToConnection` call (status's `Notifier`).

use crate::ports::{Connections, Delivery, Pusher, StoreError};

/// Sends `text` to each of `subscribers` of `job_id`. A connection found gone is removed (with
/// its subscription to `job_id`); one that fails otherwise is logged and skipped, so it never
/// holds back the others or makes the stream batch retry. Errors only when the connections
/// store does.
pub async fn fan_out(
    connections: &dyn Connections,
    pusher: &dyn Pusher,
    job_id: &str,
    subscribers: &[String],
    text: &str,
) -> Result<(), StoreError> {
    for conn in subscribers {
        match pusher.send(conn, text).await {
            Ok(Delivery::Sent) => {}
            Ok(Delivery::Gone) => {
                tracing::info!(connection = %conn, "connection gone: removed");
                connections.remove_connection(conn, Some(job_id)).await?;
            }
            Err(e) => tracing::warn!(connection = %conn, error = %e, "push not delivered"),
        }
    }
    Ok(())
}

/// Whether to push a change of `job_id` now: always for a change that must be seen (`always`:
/// a state change), else at most once per `interval_ms` across every instance.
pub async fn may_push(
    connections: &dyn Connections,
    job_id: &str,
    always: bool,
    now_ms: i64,
    interval_ms: i64,
) -> Result<bool, StoreError> {
    Ok(always || connections.claim_push(job_id, now_ms, interval_ms).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{MemoryConnections, MemoryPusher};

    #[tokio::test]
    async fn a_gone_connection_is_removed_and_a_failing_one_holds_back_no_other() {
        let conns = MemoryConnections::default();
        for c in ["a", "gone", "broken", "b"] {
            conns.subscribe(c, "job1");
        }
        conns.subscribe("gone", "job2");
        let pusher = MemoryPusher::default();
        pusher.set_gone("gone");
        pusher.set_failing("broken");
        let subs = conns.subscribers("job1").await.unwrap();
        fan_out(&conns, &pusher, "job1", &subs, "hello")
            .await
            .unwrap();
        assert_eq!(
            pusher.sent(),
            vec![
                ("a".to_string(), "hello".to_string()),
                ("b".into(), "hello".into())
            ]
        );
        let mut left = conns.subscribers("job1").await.unwrap();
        left.sort();
        assert_eq!(left, ["a", "b", "broken"]);
        // The gone connection's other subscriptions went with it.
        assert!(conns.subscribers("job2").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn progress_is_pushed_once_per_interval_and_state_changes_always() {
        let conns = MemoryConnections::default();
        assert!(may_push(&conns, "j", false, 1_000, 500).await.unwrap());
        assert!(!may_push(&conns, "j", false, 1_200, 500).await.unwrap());
        assert!(may_push(&conns, "j", true, 1_300, 500).await.unwrap());
        assert!(may_push(&conns, "j", false, 1_500, 500).await.unwrap());
        assert!(may_push(&conns, "other", false, 1_500, 500).await.unwrap());
    }
}
