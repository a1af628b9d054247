//! The agent as a Windows service: the Service Control Manager (SCM) starts the program, which
//! must hand its main thread to the SCM's dispatcher, report itself running, and stop when the
//! SCM says stop (an administrator, or the PC shutting down). A program that does not answer
//! is killed by the SCM after its timeout, losing whatever it was writing.
//!
//! Independent of the desk's loop: [`run`] takes the work as a closure given a [`Shutdown`]
//! that resolves (as a future, or [`Shutdown::wait`] when blocking) on the SCM's stop request.
//! [`install`] and [`uninstall`] register the program with the SCM.

use std::ffi::{OsStr, OsString};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::oneshot;
use windows_service::service::{
    ServiceAccess, ServiceControl, ServiceControlAccept, ServiceDependency, ServiceErrorControl,
    ServiceExitCode, ServiceInfo, ServiceStartType, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{
    self, ServiceControlHandlerResult, ServiceStatusHandle,
};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};
use windows_service::{define_windows_service, service_dispatcher};

/// The service's name in the SCM (`sc query BhytReaderAgent`).
pub const SERVICE_NAME: &str = "BhytReaderAgent";
const DISPLAY_NAME: &str = "BHYT desk reader-agent";
/// Windows' smart card service: the agent reads cards through it.
const SMART_CARD_SERVICE: &str = "SCardSvr";

/// Resolves when the SCM asks the service to stop (or the dispatcher goes away).
pub struct Shutdown(oneshot::Receiver<()>);

impl Shutdown {
    /// Blocks the calling thread until the stop request.
    pub fn wait(self) {
        let _ = self.0.blocking_recv();
    }
}

impl Future for Shutdown {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // A dropped sender means no stop can come any more: treated as one.
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

/// The service's work: runs until its [`Shutdown`] resolves; an error is reported to the SCM as
/// a service-specific exit code 1 (and goes to the caller's log).
pub type Work = Box<dyn FnOnce(Shutdown) -> Result<(), String> + Send>;

/// Why the service could not run or be (un)registered.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("windows service: {0}")]
    Windows(#[from] windows_service::Error),
    #[error("this program's path: {0}")]
    Path(std::io::Error),
    #[error("the service's work was already handed over")]
    AlreadyRunning,
}

/// The work, handed from [`run`] to the SCM's thread (the entry point must be a plain function).
static WORK: Mutex<Option<Work>> = Mutex::new(None);

/// Runs `work` as the service: blocks until the SCM has stopped it. Call from `main` of a
/// program the SCM started; elsewhere the dispatcher fails at once (error 1063).
pub fn run(work: Work) -> Result<(), ServiceError> {
    {
        let mut slot = WORK.lock().map_err(|_| ServiceError::AlreadyRunning)?;
        if slot.is_some() {
            return Err(ServiceError::AlreadyRunning);
        }
        *slot = Some(work);
    }
    service_dispatcher::start(SERVICE_NAME, ffi_service_main)?;
    Ok(())
}

define_windows_service!(ffi_service_main, service_main);

fn service_main(_arguments: Vec<OsString>) {
    let Some(work) = WORK.lock().ok().and_then(|mut slot| slot.take()) else {
        return;
    };
    let (stop, stopped) = oneshot::channel();
    let stop = Mutex::new(Some(stop));
    // The handler reports "stop pending" itself, so the SCM waits for the work to finish.
    let handle: Arc<OnceLock<ServiceStatusHandle>> = Arc::new(OnceLock::new());
    let handler_handle = Arc::clone(&handle);
    let handler = move |control| match control {
        ServiceControl::Stop | ServiceControl::Shutdown => {
            if let Some(handle) = handler_handle.get() {
                let _ = handle.set_service_status(status(ServiceState::StopPending, None));
            }
            if let Some(stop) = stop.lock().ok().and_then(|mut s| s.take()) {
                let _ = stop.send(());
            }
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    };
    let Ok(registered) = service_control_handler::register(SERVICE_NAME, handler) else {
        return;
    };
    let handle = handle.get_or_init(|| registered);
    if handle
        .set_service_status(status(ServiceState::Running, None))
        .is_err()
    {
        return;
    }
    let exit = match work(Shutdown(stopped)) {
        Ok(()) => ServiceExitCode::Win32(0),
        Err(_) => ServiceExitCode::ServiceSpecific(1),
    };
    let _ = handle.set_service_status(status(ServiceState::Stopped, Some(exit)));
}

/// A status to report: stop and shutdown are accepted while running.
fn status(state: ServiceState, exit: Option<ServiceExitCode>) -> ServiceStatus {
    ServiceStatus {
        service_type: ServiceType::OWN_PROCESS,
        current_state: state,
        controls_accepted: if state == ServiceState::Running {
            ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN
        } else {
            ServiceControlAccept::empty()
        },
        exit_code: exit.unwrap_or(ServiceExitCode::Win32(0)),
        checkpoint: 0,
        // How long the SCM waits for the next report while stopping.
        wait_hint: if state == ServiceState::StopPending {
            Duration::from_secs(15)
        } else {
            Duration::default()
        },
        process_id: None,
    }
}

/// Registers this program as an automatically started service running
/// `reader-agent <arguments>` (e.g. `run --service --config C:\ProgramData\bhyt\agent.toml`)
/// as LocalService, after the smart card service. Needs an administrator.
pub fn install(arguments: &[&OsStr]) -> Result<(), ServiceError> {
    let manager = ServiceManager::local_computer(
        None::<&str>,
        ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE,
    )?;
    let executable = std::env::current_exe().map_err(ServiceError::Path)?;
    let info = ServiceInfo {
        name: SERVICE_NAME.into(),
        display_name: DISPLAY_NAME.into(),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path: executable,
        launch_arguments: arguments.iter().map(|a| a.to_os_string()).collect(),
        dependencies: vec![ServiceDependency::Service(SMART_CARD_SERVICE.into())],
        // The least-privileged built-in account: no password, no network identity.
        account_name: Some(r"NT AUTHORITY\LocalService".into()),
        account_password: None,
    };
    let service = manager.create_service(&info, ServiceAccess::CHANGE_CONFIG)?;
    service.set_description("Reads CCCD chips at the desk and checks BHYT coverage")?;
    Ok(())
}

/// Stops (if running) and removes the service. Needs an administrator.
pub fn uninstall() -> Result<(), ServiceError> {
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)?;
    let access = ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE;
    let service = manager.open_service(SERVICE_NAME, access)?;
    if service.query_status()?.current_state != ServiceState::Stopped {
        let _ = service.stop();
    }
    service.delete()?;
    Ok(())
}
