//! `AdminService`: administration while the service runs, for administrators only; every call is
//! audited, and so is every refusal.

use std::io::Write;
use std::sync::Arc;

use bhyt_proto::v1::admin_service_server::AdminService;
use bhyt_proto::v1::{BadRow, ImportReport, RegistryChunk};
use sqlx::AnyPool;
use tonic::{Request, Response, Status, Streaming};

use super::verification::Checks;
use crate::audit::writer::{new_record_id, now_micros};
use crate::audit::{AuditEntry, EventKind};
use crate::registry::import::{ImportError, ImportOptions, import_file};
use crate::tls::Role;

const ADMINISTRATORS: &[Role] = &[Role::Administrator];
const MAX_CHUNK_BYTES: usize = 1 << 20;

pub struct AdminApi {
    pub checks: Arc<Checks>,
    pub registry: AnyPool,
    /// Where uploads are staged before they are loaded (the data directory).
    pub staging_dir: std::path::PathBuf,
    pub max_import_bytes: u64,
}

impl AdminApi {
    /// Stages the upload in a temporary file (the importer reads synchronously, between
    /// database writes), bounded in size; returns the file and the skip-bad-rows flag.
    async fn stage(
        &self,
        mut chunks: Streaming<RegistryChunk>,
    ) -> Result<(tempfile::NamedTempFile, bool), Status> {
        let mut file = tempfile::NamedTempFile::new_in(&self.staging_dir)
            .map_err(|e| Status::internal(format!("cannot stage the upload: {e}")))?;
        let (mut total, mut skip_bad_rows, mut first) = (0u64, false, true);
        while let Some(chunk) = chunks.message().await? {
            if first {
                skip_bad_rows = chunk.skip_bad_rows;
                first = false;
            }
            if chunk.csv.len() > MAX_CHUNK_BYTES {
                return Err(Status::invalid_argument(format!(
                    "csv: a chunk of {} bytes exceeds {MAX_CHUNK_BYTES}",
                    chunk.csv.len()
                )));
            }
            total += chunk.csv.len() as u64;
            if total > self.max_import_bytes {
                return Err(Status::resource_exhausted(format!(
                    "the upload exceeds limits.max_import_bytes ({} bytes): load larger files with `bhyt-verify import`",
                    self.max_import_bytes
                )));
            }
            file.write_all(&chunk.csv)
                .map_err(|e| Status::internal(format!("cannot stage the upload: {e}")))?;
        }
        if total == 0 {
            return Err(Status::invalid_argument(
                "csv: the upload is empty; send the header row and the data rows",
            ));
        }
        file.flush()
            .map_err(|e| Status::internal(format!("cannot stage the upload: {e}")))?;
        Ok((file, skip_bad_rows))
    }

    /// One `admin` audit record: who did what, and how it ended.
    async fn record(&self, who: &str, detail: String, code: tonic::Code) -> Result<(), Status> {
        let entry = AuditEntry {
            record_id: new_record_id(),
            kind: EventKind::Administration,
            recorded_at: now_micros(),
            station_id: who.chars().take(64).collect(),
            error_code: code as i32,
            detail,
            ..Default::default()
        };
        self.checks
            .audit
            .append(entry, None)
            .await
            .map_err(|_| Status::unavailable("the audit log cannot record this now: retry later"))
    }
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    #[tracing::instrument(skip_all)]
    async fn import_registry(
        &self,
        request: Request<Streaming<RegistryChunk>>,
    ) -> Result<Response<ImportReport>, Status> {
        let caller = self.checks.admit(&request, ADMINISTRATORS).await?;
        let outcome = async {
            let (file, skip_bad_rows) = self.stage(request.into_inner()).await?;
            // Recorded before the registry changes: an import the audit log cannot hear of
            // does not happen.
            self.record(
                &caller.label,
                "registry import started".into(),
                tonic::Code::Ok,
            )
            .await?;
            let report = import_file(&self.registry, file.path(), ImportOptions { skip_bad_rows })
                .await
                .map_err(|error| match error {
                    ImportError::Database(_) => Status::unavailable(error.to_string()),
                    ImportError::Rejected { .. } => Status::failed_precondition(error.to_string()),
                    _ => Status::invalid_argument(error.to_string()),
                })?;
            let forgotten = self
                .checks
                .lookup
                .cache()
                .forget(report.touched)
                .await
                .map_err(|e| {
                    Status::unavailable(format!(
                        "the rows were loaded but the cache could not forget the changed people ({e}): run the import again"
                    ))
                })?;
            Ok::<_, Status>(ImportReport {
                rows_read: report.rows_read,
                rows_loaded: report.rows_loaded,
                bad_row_count: report.bad_row_count,
                bad_rows: report
                    .bad_rows
                    .into_iter()
                    .map(|b| BadRow {
                        line: b.line,
                        field: b.field.to_owned(),
                        reason: b.reason,
                    })
                    .collect(),
                cache_entries_forgotten: forgotten as u64,
            })
        }
        .await;
        let detail = match &outcome {
            Ok(r) => format!(
                "registry import: {} rows read, {} loaded, {} bad, {} cache entries forgotten",
                r.rows_read, r.rows_loaded, r.bad_row_count, r.cache_entries_forgotten
            ),
            Err(status) => format!("registry import refused: {}", status.message()),
        };
        let code = outcome
            .as_ref()
            .map_or_else(|s| s.code(), |_| tonic::Code::Ok);
        self.record(&caller.label, detail, code).await?;
        outcome.map(Response::new)
    }
}
