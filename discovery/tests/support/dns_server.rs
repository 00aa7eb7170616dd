//! An authoritative DNS server on loopback for DNS discovery tests: an in-process
//! `hickory-server` that serves TXT records and counts the names it is asked for.
//! Included by `discovery/tests/dns.rs` and the node's `tests/dns_discovery.rs`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use discovery::dns::publish::Tree;
use hickory_server::Server;
use hickory_server::net::runtime::{Time, TokioRuntimeProvider};
use hickory_server::proto::rr::rdata::{SOA, TXT};
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordType, RrKey};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
use tokio::net::{TcpListener, UdpSocket};

/// Counts the names queried, then answers from the catalog.
pub(crate) struct Counting {
    catalog: Catalog,
    queries: Arc<Mutex<Vec<String>>>,
}

#[async_trait::async_trait]
impl RequestHandler for Counting {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response: R,
    ) -> ResponseInfo {
        if let Ok(info) = request.request_info() {
            let name = info.query.name().to_string();
            self.queries
                .lock()
                .unwrap()
                .push(name.trim_end_matches('.').to_lowercase());
        }
        self.catalog.handle_request::<R, T>(request, response).await
    }
}

/// An authoritative server for `test.` on 127.0.0.1 (UDP and TCP, one port).
pub(crate) struct Dns {
    pub(crate) addr: SocketAddr,
    zone: Arc<InMemoryZoneHandler>,
    queries: Arc<Mutex<Vec<String>>>,
    _server: Server<Counting>,
}

impl Dns {
    pub(crate) async fn start() -> Dns {
        let origin = Name::from_ascii("test.").unwrap();
        let zone = Arc::new(InMemoryZoneHandler::<TokioRuntimeProvider>::empty(
            origin.clone(),
            ZoneType::Primary,
            AxfrPolicy::Deny,
        ));
        let soa = SOA::new(origin.clone(), origin.clone(), 1, 60, 60, 60, 0);
        zone.upsert(Record::from_rdata(origin.clone(), 0, RData::SOA(soa)), 1)
            .await;
        let mut catalog = Catalog::new();
        catalog.upsert(LowerName::new(&origin), vec![zone.clone()]);
        let queries = Arc::new(Mutex::new(Vec::new()));
        let mut server = Server::new(Counting {
            catalog,
            queries: queries.clone(),
        });
        // TCP carries answers over 512 bytes (the oversized record); same port as UDP.
        let (udp, tcp) = loop {
            let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
            if let Ok(udp) = UdpSocket::bind(tcp.local_addr().unwrap()).await {
                break (udp, tcp);
            }
        };
        let addr = udp.local_addr().unwrap();
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 4096);
        Dns {
            addr,
            zone,
            queries,
            _server: server,
        }
    }

    /// Serves `text` at `name` (TTL 0, so the resolver asks every time and the count is
    /// exact), replacing what was there.
    pub(crate) async fn set(&self, name: &str, text: &str) {
        let name = Name::from_ascii(format!("{name}.")).unwrap();
        self.zone
            .records_mut()
            .await
            .remove(&RrKey::new(LowerName::new(&name), RecordType::TXT));
        // A character-string holds 255 bytes; longer texts span several.
        let parts = text
            .as_bytes()
            .chunks(255)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        let record = Record::from_rdata(name, 0, RData::TXT(TXT::new(parts)));
        assert!(self.zone.upsert(record, 1).await);
    }

    pub(crate) async fn publish(&self, tree: &Tree, domain: &str) {
        for (name, text) in tree.to_txt(domain) {
            self.set(&name, &text).await;
        }
    }

    pub(crate) fn queries(&self) -> Vec<String> {
        self.queries.lock().unwrap().clone()
    }
}
