//! Task events to containerd, in order, from a queue: a call never waits
//! for containerd to take an event, and a containerd that restarts gets
//! the events it missed (the client reconnects, with back-off; an event is
//! retried in place, so none overtakes another).
//!
//! Events are packed by hand (`Any` with the message's full name as
//! containerd's typeurl reads it): protobuf's reflection, which the
//! crate's publisher uses for that, builds descriptor tables that would
//! stay in the shim's memory for good.

use std::time::Duration;

use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::{Message, MessageField};
use containerd_shim::protos::shim::event::Envelope;
use containerd_shim::protos::shim::events::ForwardRequest;
use containerd_shim::protos::shim_async::EventsClient;
use containerd_shim::protos::ttrpc::context::with_timeout;
use containerd_shim::protos::ttrpc::r#async::Client;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

struct Item {
    topic: &'static str,
    event: Any,
}

/// The sending end of the queue; usable from any thread.
pub struct Events {
    tx: UnboundedSender<Item>,
}

/// How often one event is tried before it is given up (about 40 s in all).
const ATTEMPTS: u32 = 12;

/// `m` packed in an `Any` under `package.Name`.
pub fn pack<M: Message>(package: &str, m: &M) -> Any {
    Any {
        type_url: format!("{package}.{}", M::NAME),
        value: m.write_to_bytes().unwrap_or_default(),
        ..Default::default()
    }
}

impl Events {
    /// Start the publishing task (on the current tokio runtime) for
    /// containerd's ttrpc socket at `address`.
    pub fn start(address: String, namespace: String) -> Events {
        let (tx, rx) = unbounded_channel();
        tokio::spawn(publish_all(address, namespace, rx));
        Events { tx }
    }

    /// Queue an event of containerd's `containerd.events` package.
    pub fn send<M: Message>(&self, topic: &'static str, msg: M) {
        let item = Item {
            topic,
            event: pack("containerd.events", &msg),
        };
        if self.tx.send(item).is_err() {
            log::error!("event {topic} lost: the publisher is gone");
        }
    }
}

async fn connect(address: &str) -> Option<EventsClient> {
    let addr = if address.contains("://") {
        address.to_string()
    } else {
        format!("unix://{address}")
    };
    match Client::connect(&addr).await {
        Ok(c) => Some(EventsClient::new(c)),
        Err(e) => {
            log::debug!("connect to {address}: {e}");
            None
        }
    }
}

async fn publish_all(address: String, namespace: String, mut rx: UnboundedReceiver<Item>) {
    let mut client = None;
    while let Some(item) = rx.recv().await {
        let req = ForwardRequest {
            envelope: MessageField::some(Envelope {
                timestamp: MessageField::some(crate::service::now()),
                namespace: namespace.clone(),
                topic: item.topic.to_string(),
                event: MessageField::some(item.event),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut delay = Duration::from_millis(50);
        for attempt in 1..=ATTEMPTS {
            if client.is_none() {
                client = connect(&address).await;
            }
            if let Some(c) = &client {
                match c.forward(with_timeout(5_000_000_000), &req).await {
                    Ok(_) => {
                        log::debug!("published {}", item.topic);
                        break;
                    }
                    Err(e) => {
                        log::warn!("publish {} (attempt {attempt}): {e}", item.topic);
                        client = None;
                    }
                }
            }
            if attempt == ATTEMPTS {
                log::error!("event {} lost after {attempt} attempts", item.topic);
                break;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }
}
