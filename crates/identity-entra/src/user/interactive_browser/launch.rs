//! Starting the browser: the `BROWSER` command (without a shell), else the platform's opener.

use identity_core::Env;

use super::BROWSER;

/// Characters a `BROWSER` command may not contain: it is run without a shell, so these could
/// only be a mistake or an attempt at injection.
const SHELL_CHARACTERS: &[char] = &[
    ';', '|', '&', '$', '`', '<', '>', '(', ')', '{', '}', '*', '?', '!', '\'', '"', '\\', '\n',
];

/// The `BROWSER` command's words, after validation.
pub(super) fn browser_command(value: &str) -> Result<Vec<String>, String> {
    if value
        .chars()
        .any(|c| c.is_control() || SHELL_CHARACTERS.contains(&c))
    {
        return Err(
            "BROWSER contains shell metacharacters; set it to a program and plain arguments".into(),
        );
    }
    let words: Vec<String> = value.split_whitespace().map(str::to_owned).collect();
    if words.is_empty() {
        return Err("BROWSER is blank".into());
    }
    Ok(words)
}

/// Starts the browser on `url`; the reason when none starts. The receiver gets whether the
/// browser command ended well, when it ends (an opener such as `xdg-open` that finds no
/// browser exits with a failure status).
pub(super) fn open_browser(
    env: &Env,
    url: &str,
) -> Result<tokio::sync::oneshot::Receiver<bool>, String> {
    let words: Vec<String> = match env.non_blank(BROWSER) {
        Some(value) => {
            let mut words = browser_command(value)?;
            if words.iter().any(|w| w.contains("%s")) {
                for word in &mut words {
                    *word = word.replace("%s", url);
                }
            } else {
                words.push(url.to_owned());
            }
            words
        }
        None => platform_opener(url),
    };
    let (program, args) = words.split_first().ok_or("no browser command")?;
    let child = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("{program} could not be started: {}", e.kind()))?;
    // Reaped on a thread so it leaves no zombie; the browser may outlive the sign-in.
    let (ended, receiver) = tokio::sync::oneshot::channel();
    let _ = std::thread::Builder::new()
        .name("browser-reaper".into())
        .spawn(move || {
            let mut child = child;
            let success = child.wait().is_ok_and(|status| status.success());
            let _ = ended.send(success);
        });
    Ok(receiver)
}

fn platform_opener(url: &str) -> Vec<String> {
    let words: &[&str] = if cfg!(target_os = "macos") {
        &["open"]
    } else if cfg!(windows) {
        &["rundll32", "url.dll,FileProtocolHandler"]
    } else {
        &["xdg-open"]
    };
    words
        .iter()
        .map(|w| (*w).to_owned())
        .chain(std::iter::once(url.to_owned()))
        .collect()
}
