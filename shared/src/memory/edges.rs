//! In-memory WebSocket connections, pushes, objects and task queue (the [`Connections`],
//! [`Pusher`], [`Objects`] and [`Tasks`] ports), for unit tests of the use cases over them.
//! Same answers as the adapters: a push slot is claimed by a conditional write, a missing
//! object is an error, deleting a missing key is fine.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::ports::{Connections, Delivery, Objects, Pusher, StoreError, Tasks};
use crate::task::QueueMessage;

/// Subscriptions (job -> connections) and the last push per job.
#[derive(Debug, Default)]
pub struct MemoryConnections {
    state: Mutex<Subscriptions>,
}

/// Connection ids by job, and the last push's time by job.
type Subscriptions = (BTreeMap<String, BTreeSet<String>>, HashMap<String, i64>);

impl MemoryConnections {
    /// Subscribes `conn` to `job_id`.
    pub fn subscribe(&self, conn: &str, job_id: &str) {
        let mut s = self.state.lock().unwrap();
        s.0.entry(job_id.into()).or_default().insert(conn.into());
    }
}

#[async_trait]
impl Connections for MemoryConnections {
    async fn subscribers(&self, job_id: &str) -> Result<Vec<String>, StoreError> {
        let s = self.state.lock().unwrap();
        Ok(s.0
            .get(job_id)
            .map(|c| c.iter().cloned().collect())
            .unwrap_or_default())
    }
    async fn remove_connection(
        &self,
        conn: &str,
        _also_job: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut s = self.state.lock().unwrap();
        for subs in s.0.values_mut() {
            subs.remove(conn);
        }
        Ok(())
    }
    async fn claim_push(
        &self,
        job_id: &str,
        now_ms: i64,
        interval_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut s = self.state.lock().unwrap();
        match s.1.get(job_id) {
            Some(&last) if last > now_ms - interval_ms => Ok(false),
            _ => {
                s.1.insert(job_id.into(), now_ms);
                Ok(true)
            }
        }
    }
}

/// Records what was sent; connections can be set gone or failing.
#[derive(Debug, Default)]
pub struct MemoryPusher {
    sent: Mutex<Vec<(String, String)>>,
    gone: Mutex<HashSet<String>>,
    failing: Mutex<HashSet<String>>,
}

impl MemoryPusher {
    /// `conn` answers 410 from now on.
    pub fn set_gone(&self, conn: &str) {
        self.gone.lock().unwrap().insert(conn.into());
    }
    /// Sends to `conn` fail from now on (not gone: e.g. throttled).
    pub fn set_failing(&self, conn: &str) {
        self.failing.lock().unwrap().insert(conn.into());
    }
    /// `(connection, message)` of every message delivered, in order.
    pub fn sent(&self) -> Vec<(String, String)> {
        self.sent.lock().unwrap().clone()
    }
}

#[async_trait]
impl Pusher for MemoryPusher {
    async fn send(&self, connection: &str, message: &str) -> Result<Delivery, StoreError> {
        if self.gone.lock().unwrap().contains(connection) {
            return Ok(Delivery::Gone);
        }
        if self.failing.lock().unwrap().contains(connection) {
            return Err(StoreError::Service {
                op: "PostToConnection",
                detail: "failing (set by the test)".into(),
            });
        }
        self.sent
            .lock()
            .unwrap()
            .push((connection.into(), message.into()));
        Ok(Delivery::Sent)
    }
}

/// Objects by key.
#[derive(Debug, Default)]
pub struct MemoryObjects {
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl MemoryObjects {
    /// The keys held, in order.
    pub fn keys(&self) -> Vec<String> {
        self.objects.lock().unwrap().keys().cloned().collect()
    }
}

#[async_trait]
impl Objects for MemoryObjects {
    async fn read_all(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        self.objects
            .lock()
            .unwrap()
            .get(key)
            .cloned()
            .ok_or_else(|| StoreError::Service {
                op: "GetObject",
                detail: format!("NoSuchKey: {key}"),
            })
    }
    async fn put(&self, key: &str, body: Vec<u8>, _content_type: &str) -> Result<(), StoreError> {
        self.objects.lock().unwrap().insert(key.into(), body);
        Ok(())
    }
    async fn delete_keys(&self, keys: &[String]) -> Result<(), StoreError> {
        let mut o = self.objects.lock().unwrap();
        for k in keys {
            o.remove(k);
        }
        Ok(())
    }
}

/// The messages sent, in order.
#[derive(Debug, Default)]
pub struct MemoryTasks {
    sent: Mutex<Vec<QueueMessage>>,
}

impl MemoryTasks {
    /// Every message sent so far.
    pub fn sent(&self) -> Vec<QueueMessage> {
        self.sent.lock().unwrap().clone()
    }
}

#[async_trait]
impl Tasks for MemoryTasks {
    async fn send_messages(&self, messages: &[QueueMessage]) -> Result<(), StoreError> {
        self.sent.lock().unwrap().extend_from_slice(messages);
        Ok(())
    }
}
