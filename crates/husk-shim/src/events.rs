//! Task events to containerd, in order, from a queue: an RPC never waits
//! for containerd to take an event, and a containerd that restarts gets
//! the events it missed (the crate's publisher never reconnects; this one
//! does, with back-off).

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Mutex;
use std::time::Duration;

use containerd_shim::protos::protobuf::MessageDyn;
use containerd_shim::protos::ttrpc::context::with_timeout;
use containerd_shim::publisher::RemotePublisher;

struct Envelope {
    topic: &'static str,
    msg: Box<dyn MessageDyn>,
}

/// The sending end of the queue.
pub struct Events {
    tx: Mutex<Sender<Envelope>>,
}

/// How often one event is tried before it is given up (about 30 s in all).
const ATTEMPTS: u32 = 10;

impl Events {
    /// Start the publishing thread.
    pub fn start(publisher: RemotePublisher, namespace: String) -> std::io::Result<Events> {
        let (tx, rx) = channel();
        std::thread::Builder::new()
            .name("events".into())
            .stack_size(256 << 10)
            .spawn(move || publish_all(publisher, &namespace, rx))?;
        Ok(Events { tx: Mutex::new(tx) })
    }

    /// Queue an event (in the order of the calls).
    pub fn send(&self, topic: &'static str, msg: impl MessageDyn) {
        let env = Envelope {
            topic,
            msg: Box::new(msg),
        };
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        if tx.send(env).is_err() {
            log::error!("event {topic} lost: the publisher is gone");
        }
    }
}

fn publish_all(mut publisher: RemotePublisher, namespace: &str, rx: Receiver<Envelope>) {
    let address = std::env::var("TTRPC_ADDRESS").unwrap_or_default();
    for env in rx {
        let bytes = match env.msg.write_to_bytes_dyn() {
            Ok(b) => b,
            Err(e) => {
                log::error!("event {}: encode: {e}", env.topic);
                continue;
            }
        };
        let descriptor = env.msg.descriptor_dyn();
        let mut delay = Duration::from_millis(50);
        for attempt in 1..=ATTEMPTS {
            let msg = match descriptor.parse_from_bytes(&bytes) {
                Ok(m) => m,
                Err(_) => break,
            };
            match publisher.publish(with_timeout(5_000_000_000), env.topic, namespace, msg) {
                Ok(()) => {
                    log::debug!("published {}", env.topic);
                    break;
                }
                Err(e) if attempt == ATTEMPTS => {
                    log::error!("event {} lost after {attempt} attempts: {e}", env.topic);
                }
                Err(e) => {
                    log::warn!("publish {} (attempt {attempt}): {e}", env.topic);
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(5));
                    match RemotePublisher::new(&address) {
                        Ok(p) => publisher = p,
                        Err(e) => log::debug!("reconnect to {address}: {e}"),
                    }
                }
            }
        }
    }
}
