//! Putting the service together from its configuration, and serving it until shutdown.
//!
//! The caller owns the listeners and the shutdown signal (tests bind port 0 and stop the server
//! when they are done); shutdown stops accepting calls, lets calls in progress finish, then
//! commits the audit log's queue and signs its closing checkpoint.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use bhyt_proto::v1::admin_service_server::AdminServiceServer;
use bhyt_proto::v1::audit_service_server::AuditServiceServer;
use bhyt_proto::v1::verification_service_server::VerificationServiceServer;
use sqlx::AnyPool;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

use crate::abuse::AbuseLimits;
use crate::api::admin::AdminApi;
use crate::api::audit::AuditApi;
use crate::api::caller::Gate;
use crate::api::verification::{Checks, Presence, Secrets, VerificationApi};
use crate::audit::AuditLog;
use crate::audit::writer::WriterOptions;
use crate::cache::CoverageCache;
use crate::config::{Config, SourceKind};
use crate::db::{self, Schema};
use crate::keys::{CheckpointVerifier, KeyError, Keys};
use crate::lookup::Lookup;
use crate::metrics::Metrics;
use crate::overload::CheckSlots;
use crate::presence::PresenceVerifier;
use crate::presence::challenge::Challenges;
use crate::registry::Registry;
use crate::source::CoverageSource;
use crate::source::breaker::{BreakerSettings, BreakerState, CircuitBreaker};
use crate::source::gateway::{GatewaySetupError, GatewaySource};
use crate::source_lock::SourceLock;
use crate::tls::{self, HandshakeFailure, ServerTls, TlsSettings};
use cccd_authenticity::passive::Policy;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("data directory {0}: {1}")]
    DataDir(String, std::io::Error),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error("registry database: {0}")]
    Registry(sqlx::Error),
    #[error("audit database: {0}")]
    Audit(sqlx::Error),
    #[error("redis configuration: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("serving: {0}")]
    Serve(String),
    #[error("mutual TLS: {0}")]
    Tls(crate::tls::TlsError),
    #[error("chip trust store (chip.trust_dir): {0}")]
    Trust(std::io::Error),
    #[error("gateway source: {0}")]
    Gateway(#[from] GatewaySetupError),
}

/// A started backend: databases open, audit writer running, not yet serving.
pub struct App {
    pub config: Config,
    pub checks: Arc<Checks>,
    pub metrics: Arc<Metrics>,
    pub registry_pool: AnyPool,
    verifiers: Vec<CheckpointVerifier>,
    tls: Option<Arc<ServerTls>>,
    source_health: Arc<SourceHealth>,
}

/// What `/health` reports of the configured coverage source.
enum SourceHealth {
    /// The registry database (its pool is `App::registry_pool`).
    Registry,
    /// The national gateway: the last answer it gave, and its circuit breaker when there is one.
    Gateway {
        gateway: Arc<GatewaySource>,
        breaker: Option<Arc<CircuitBreaker>>,
    },
}

impl App {
    pub async fn start(config: Config) -> Result<Self, StartError> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| StartError::DataDir(config.data_dir.display().to_string(), e))?;
        let keys = Keys::load_or_create(&config.keys_dir())?;
        let metrics = Arc::new(Metrics::new());
        let registry_pool = db::connect(&config.registry_url(), 16, Schema::Registry)
            .await
            .map_err(StartError::Registry)?;
        let audit_pool = db::connect(&config.audit_url(), 8, Schema::Audit)
            .await
            .map_err(StartError::Audit)?;
        let verifiers = vec![keys.signer.verifier()];
        let audit = AuditLog::start(
            audit_pool.clone(),
            keys.signer,
            metrics.clone(),
            WriterOptions {
                max_batch: config.audit.max_batch,
                checkpoint_interval: Duration::from_secs(
                    config.audit.checkpoint_interval_secs.max(1),
                ),
                commit_timeout: Duration::from_millis(config.audit.commit_timeout_ms),
                spool: (config.audit.spool_max_bytes > 0)
                    .then(|| (config.audit_spool_dir(), config.audit.spool_max_bytes)),
            },
        )
        .await
        .map_err(StartError::Audit)?;
        let sealer = Arc::new(keys.sealer);
        // Mutual TLS unless plain text was explicitly asked for (development only).
        let tls = match TlsSettings::from_config(&config).map_err(StartError::Tls)? {
            Some(settings) => Some(ServerTls::load(settings).map_err(StartError::Tls)?),
            None => None,
        };
        let cache = CoverageCache::new(&config.cache, keys.pseudonymizer.clone(), sealer.clone())?;
        if config.cache.redis_url.is_empty() && config.cache.redis_cluster_nodes.is_empty() {
            tracing::warn!("no redis configured: caching in this process only");
        }
        let presence = Presence {
            challenges: Challenges::new(
                keys.pseudonymizer.clone(),
                Duration::from_millis(config.cache.redis_timeout_ms),
            ),
            verifier: Arc::new(
                PresenceVerifier::load(
                    &config.trust_dir(),
                    Policy {
                        allow_sha1: config.chip.allow_sha1,
                        require_crl: config.chip.require_crl,
                    },
                )
                .map_err(StartError::Trust)?,
            ),
        };
        let (source, source_health) = match config.source.kind {
            SourceKind::Gateway => {
                tracing::info!("coverage source: the national gateway");
                let gateway = Arc::new(GatewaySource::new(&config.source)?);
                let breaker = with_breaker(gateway.clone(), &config.source, &metrics);
                let source: Arc<dyn CoverageSource> = match &breaker {
                    Some(breaker) => breaker.clone(),
                    None => gateway.clone(),
                };
                (source, SourceHealth::Gateway { gateway, breaker })
            }
            SourceKind::Registry => {
                let registry: Arc<dyn CoverageSource> =
                    Arc::new(Registry::new(registry_pool.clone()));
                let source: Arc<dyn CoverageSource> =
                    match with_breaker(registry.clone(), &config.source, &metrics) {
                        Some(breaker) => breaker,
                        None => registry,
                    };
                (source, SourceHealth::Registry)
            }
        };
        let lookup = Lookup::new(
            cache,
            source,
            metrics.clone(),
            config.cache.coalesce,
            config.cache.refresh_ahead_percent,
            // Only where there is a shared cache to wait on.
            SourceLock::new(
                Duration::from_millis(config.cache.source_lock_ms),
                Duration::from_millis(config.cache.redis_timeout_ms),
            )
            .filter(|_| config.cache.enabled && !config.cache.redis_url.is_empty()),
        );
        let checks = Arc::new(Checks::new(
            lookup,
            audit,
            audit_pool,
            Secrets {
                pseudonymizer: keys.pseudonymizer,
                sealer,
                proof: keys.proof_signer,
            },
            metrics.clone(),
            AbuseLimits::new(config.abuse.clone()),
            Gate::new(tls.clone()),
            presence,
            config.limits.max_message_bytes,
            CheckSlots::new(&config.limits, metrics.clone()),
        ));
        tracing::info!(writer = checks.audit.writer_id(), "audit writer started");
        Ok(Self {
            config,
            checks,
            metrics,
            registry_pool,
            verifiers,
            tls,
            source_health: Arc::new(source_health),
        })
    }

    /// Serves gRPC on `grpc` and the operator endpoints on `http` until `shutdown` resolves.
    pub async fn serve(
        self,
        grpc: TcpListener,
        http: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let limits = &self.config.limits;
        // Reflection and health for operators and generic clients (grpcurl, grpc_health_probe).
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(bhyt_proto::v1::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| StartError::Serve(e.to_string()))?;
        let (health_reporter, health) = tonic_health::server::health_reporter();
        health_reporter
            .set_serving::<VerificationServiceServer<VerificationApi>>()
            .await;
        health_reporter
            .set_serving::<AuditServiceServer<AuditApi>>()
            .await;
        health_reporter
            .set_serving::<AdminServiceServer<AdminApi>>()
            .await;

        // The transport refuses only absurd messages; the check itself refuses, audits and
        // names anything above the configured limit.
        let transport_limit = limits.max_message_bytes.saturating_mul(4).max(64 * 1024);
        let verification = VerificationServiceServer::new(VerificationApi(self.checks.clone()))
            .max_decoding_message_size(transport_limit);
        let audit = AuditServiceServer::new(AuditApi {
            checks: self.checks.clone(),
            verifiers: self.verifiers.clone(),
            quiet_after_micros: i64::try_from(self.config.audit.checkpoint_interval_secs)
                .unwrap_or(i64::MAX / 4_000_000)
                .saturating_mul(3_000_000),
        })
        .max_decoding_message_size(transport_limit);

        let admin = AdminServiceServer::new(AdminApi {
            checks: self.checks.clone(),
            registry: self.registry_pool.clone(),
            staging_dir: self.config.data_dir.clone(),
            max_import_bytes: limits.max_import_bytes,
        });

        let operator = operator_routes(OperatorState {
            metrics: self.metrics.clone(),
            checks: self.checks.clone(),
            registry: self.registry_pool.clone(),
            source: self.source_health.clone(),
        });
        let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
        let http_task = tokio::spawn(async move {
            axum::serve(http, operator)
                .with_graceful_shutdown(async {
                    let _ = http_stopped.await;
                })
                .await
        });

        let router = tonic::transport::Server::builder()
            .concurrency_limit_per_connection(limits.max_concurrent_requests)
            .load_shed(true)
            .timeout(self.config.request_timeout())
            .add_service(health)
            .add_service(reflection)
            .add_service(verification)
            .add_service(audit)
            .add_service(admin);
        let result = match &self.tls {
            Some(tls) => {
                let crl_watch = tls.spawn_crl_watch();
                let (failures, mut refused) = tokio::sync::mpsc::channel::<HandshakeFailure>(1024);
                let checks = self.checks.clone();
                let recorder = tokio::spawn(async move {
                    while let Some(failure) = refused.recv().await {
                        checks.record_handshake_failure(&failure).await;
                    }
                });
                let incoming = tls::serve_incoming(grpc, tls.clone(), failures);
                let result = router
                    .serve_with_incoming_shutdown(incoming, shutdown)
                    .await;
                crl_watch.abort();
                // The accept loop is gone with `incoming`: the recorder drains what it sent.
                let _ = recorder.await;
                result
            }
            None => {
                // No Nagle delay, as on the TLS path: with it, a small answer waits for the
                // client's delayed ACK (about 40 ms on Linux).
                let incoming = tokio_stream::StreamExt::map(TcpListenerStream::new(grpc), |tcp| {
                    tcp.inspect(|tcp| {
                        let _ = tcp.set_nodelay(true);
                    })
                });
                router
                    .serve_with_incoming_shutdown(incoming, shutdown)
                    .await
            }
        };
        tracing::info!("stopped serving; closing the audit log");
        self.checks.audit.close().await;
        let _ = stop_http.send(());
        let _ = http_task.await;
        // Closing the last SQLite connection also folds its write-ahead log into the database.
        self.checks.audit_pool.close().await;
        self.registry_pool.close().await;
        result.map_err(|e| StartError::Serve(e.to_string()))
    }
}

#[derive(Clone)]
struct OperatorState {
    metrics: Arc<Metrics>,
    checks: Arc<Checks>,
    registry: AnyPool,
    source: Arc<SourceHealth>,
}

fn operator_routes(state: OperatorState) -> axum::Router {
    axum::Router::new()
        .route(
            "/metrics",
            get(|State(s): State<OperatorState>| async move { s.metrics.render() }),
        )
        .route("/health", get(health))
        .with_state(state)
}

/// Each dependency's state, as JSON; 503 when checks cannot be answered and recorded: the
/// audit store is unreachable and there is no spool. (With a spool the replica still answers;
/// failing its health check would have a load balancer drop every replica at once, since they
/// share the store.) The source is the configured one: the registry database, or the gateway
/// (whose registry database, if any, answers no checks and is not reported).
async fn health(State(s): State<OperatorState>) -> (StatusCode, axum::Json<serde_json::Value>) {
    let audit = db::ping(&s.checks.audit_pool).await;
    let (source_ok, source_key, source_state) = match &*s.source {
        SourceHealth::Registry => {
            let up = db::ping(&s.registry).await;
            (
                up,
                "registry",
                serde_json::json!(if up { "ok" } else { "unreachable" }),
            )
        }
        SourceHealth::Gateway { gateway, breaker } => {
            let breaker = breaker.as_ref().map(|b| b.state());
            let state = serde_json::json!({
                "breaker": match breaker {
                    None => "none",
                    Some(BreakerState::Closed) => "closed",
                    Some(BreakerState::HalfOpen) => "half-open",
                    Some(BreakerState::Open) => "open",
                },
                "last_answer_secs_ago": gateway.last_answer_age().map(|age| age.as_secs()),
            });
            let open = matches!(breaker, Some(BreakerState::Open));
            (!open, "gateway", state)
        }
    };
    let status = if audit || s.checks.audit.spool_enabled() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let audit_store = match (audit, s.checks.audit.spool_enabled()) {
        (true, _) => "ok",
        (false, true) => "unreachable: records go to the local spool",
        (false, false) => "unreachable",
    };
    let mut body = serde_json::json!({
        "status": if audit && source_ok { "ok" } else { "degraded" },
        "source": source_key,
        "audit_store": audit_store,
        "cache": s.checks.lookup.cache().tier_in_use(),
        "audit_writer": s.checks.audit.writer_id(),
    });
    body[source_key] = source_state;
    (status, axum::Json(body))
}

/// The circuit breaker to put around the source, unless `breaker_failure_threshold` is 0.
fn with_breaker(
    source: Arc<dyn CoverageSource>,
    config: &crate::config::SourceConfig,
    metrics: &Arc<Metrics>,
) -> Option<Arc<CircuitBreaker>> {
    if config.breaker_failure_threshold == 0 {
        return None;
    }
    let settings = BreakerSettings {
        failure_threshold: config.breaker_failure_threshold,
        cool_down: Duration::from_millis(config.breaker_cool_down_ms),
    };
    Some(Arc::new(CircuitBreaker::new(
        source,
        settings,
        metrics.clone(),
    )))
}
