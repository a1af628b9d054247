//! What the desk and the operator read about the spool, Vietnamese first. Request ids, times,
//! counts and result codes only: `spool send` and `spool list` print no personal data.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use time::macros::offset;

use super::{Counts, Replayed, Round, SpoolError, Stop};
use crate::desk::{Lang, yes_no};

fn t(lang: Lang, vi: &str, en: &str) -> String {
    match lang {
        Lang::Vi => vi.to_owned(),
        Lang::En => en.to_owned(),
    }
}

/// The desk's line after an unreachable backend: whether the check was kept for later.
/// `kept` is `None` when no spool is configured.
pub fn kept(kept: Option<&Result<(), SpoolError>>, request_id: &str, lang: Lang) -> String {
    match kept {
        Some(Ok(())) => t(
            lang,
            &format!(
                "Đã lưu yêu cầu kiểm tra (mã {request_id}) trên máy trạm, có mã hóa; sẽ tự gửi khi máy chủ hoạt động lại. Kết quả gửi sau chỉ để lưu hồ sơ: không coi là xác thực chip của máy chủ.\n"
            ),
            &format!(
                "The check was kept on this PC (request {request_id}), encrypted; it is sent when the backend is back. Its later answer is for the record: do not take it as the backend's chip verification.\n"
            ),
        ),
        Some(Err(SpoolError::Full { max })) => t(
            lang,
            &format!(
                "KHÔNG lưu được yêu cầu kiểm tra: hàng đợi đã đầy ({max} yêu cầu chờ gửi). Ghi lại lượt khám theo quy trình dự phòng và báo quản trị viên.\n"
            ),
            &format!(
                "The check was NOT kept: the spool is full ({max} checks waiting). Record the visit by the fallback procedure and tell the administrator.\n"
            ),
        ),
        Some(Err(error)) => t(
            lang,
            &format!("KHÔNG lưu được yêu cầu kiểm tra: {error}\n"),
            &format!("The check was NOT kept: {error}\n"),
        ),
        None => t(
            lang,
            "Yêu cầu kiểm tra không được lưu (chưa cấu hình spool_dir).\n",
            "The check was not kept (no spool_dir configured).\n",
        ),
    }
}

/// A round of `spool send`, one line per entry, then why it stopped.
pub fn round(round: &Round, lang: Lang) -> String {
    let mut out = String::new();
    for replayed in &round.replayed {
        match replayed {
            Replayed::Delivered {
                request_id,
                spooled_at,
                answer,
            } => {
                let chip = answer.presence.as_ref().is_some_and(|p| p.verified);
                let _ = writeln!(
                    out,
                    "{}: {:?}, {} {}, {} {}{}",
                    entry(t(lang, "Đã gửi", "Sent"), request_id, *spooled_at, lang),
                    answer.result(),
                    t(lang, "dùng được:", "usable:"),
                    yes_no(answer.usable, lang),
                    t(lang, "bản ghi", "audit record"),
                    answer.audit_record_id,
                    if chip {
                        t(
                            lang,
                            ", chip đã được máy chủ xác thực",
                            ", chip verified by the backend",
                        )
                    } else {
                        t(
                            lang,
                            ", chip KHÔNG được máy chủ xác thực",
                            ", chip NOT verified by the backend",
                        )
                    },
                );
            }
            Replayed::Refused {
                request_id,
                spooled_at,
                code,
                message,
            } => {
                let _ = writeln!(
                    out,
                    "{}: {code:?}: {message} — {}",
                    entry(
                        t(lang, "Bị từ chối", "Refused"),
                        request_id,
                        *spooled_at,
                        lang
                    ),
                    t(lang, "chuyển vào refused/", "moved to refused/"),
                );
            }
            Replayed::Unreadable { file, reason } => {
                let _ = writeln!(
                    out,
                    "{} {file}: {reason} — {} {file}.bad",
                    t(lang, "Không đọc được", "Unreadable"),
                    t(lang, "để riêng thành", "kept aside as"),
                );
            }
        }
    }
    let stopped = match &round.stopped {
        None => return out,
        Some(Stop::Backend(error)) => format!(
            "{} ({error})",
            t(
                lang,
                "Dừng: máy chủ chưa nhận; phần còn lại gửi sau",
                "Stopped: the backend is not taking checks; the rest is sent later"
            )
        ),
        Some(Stop::Busy) => t(
            lang,
            "Dừng: một tiến trình khác đang gửi hàng đợi này",
            "Stopped: another process is sending this spool",
        ),
        Some(Stop::Spool(error)) => format!("{}: {error}", t(lang, "Dừng", "Stopped")),
    };
    let _ = writeln!(out, "{stopped}");
    out
}

/// "<what> <request id> (kept <when>)": how each entry's line begins.
fn entry(what: String, request_id: &str, spooled_at: SystemTime, lang: Lang) -> String {
    format!(
        "{what} {request_id} ({} {})",
        t(lang, "lưu lúc", "kept"),
        local_time(spooled_at)
    )
}

/// `spool list`: counts and the oldest waiting check's time.
pub fn counts(counts: &Counts, lang: Lang) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}: {}", t(lang, "Chờ gửi", "Waiting"), counts.pending);
    if let Some(oldest) = counts.oldest {
        let _ = writeln!(
            out,
            "{}: {}",
            t(lang, "Cũ nhất lưu lúc", "Oldest kept"),
            local_time(oldest)
        );
    }
    let _ = writeln!(
        out,
        "{}: {}",
        t(lang, "Bị từ chối (refused/)", "Refused (refused/)"),
        counts.refused
    );
    let _ = writeln!(
        out,
        "{}: {}",
        t(lang, "Không đọc được (.bad)", "Unreadable (.bad)"),
        counts.unreadable
    );
    out
}

/// A time as the desk reads it: Vietnam's (UTC+7).
fn local_time(time: SystemTime) -> String {
    let at = time
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| time::Duration::try_from(d).ok())
        .and_then(|d| OffsetDateTime::UNIX_EPOCH.checked_add(d))
        .map(|at| at.to_offset(offset!(+7)));
    let Some(at) = at else {
        return "?".into();
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} (UTC+7)",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_desk_is_told_plainly_whether_the_check_was_kept() {
        let kept_vi = kept(Some(&Ok(())), "r-1", Lang::Vi);
        assert!(
            kept_vi.contains("Đã lưu") && kept_vi.contains("r-1"),
            "{kept_vi}"
        );
        let full = Err(SpoolError::Full { max: 500 });
        let en = kept(Some(&full), "r-1", Lang::En);
        assert!(en.contains("NOT kept") && en.contains("500"), "{en}");
        let vi = kept(Some(&full), "r-1", Lang::Vi);
        assert!(vi.contains("KHÔNG lưu được"), "{vi}");
        let none = kept(None, "r-1", Lang::En);
        assert!(none.contains("not kept"), "{none}");
    }

    #[test]
    fn times_out_of_range_do_not_panic() {
        let far = UNIX_EPOCH + std::time::Duration::from_secs(1 << 40);
        assert_eq!(local_time(far), "?");
        assert_eq!(local_time(UNIX_EPOCH), "1970-01-01 07:00:00 (UTC+7)");
    }
}
