//! A bare Tauri window of Troupe's size showing a static page, and nothing else: the baseline
//! the window's memory is judged against (`tests/e2e/window_memory.py`, issue 24).
//!
//!     cargo build -p troupe --example bare_window

const PAGE: &str = "<!doctype html><title>Bare</title><h1>A static page</h1>";

fn main() {
    let mut context = tauri::generate_context!();
    // Troupe's window comes from the config; this one is made below, with a static page
    // served from a protocol of its own (no IPC, no script).
    context.config_mut().app.windows.clear();
    tauri::Builder::default()
        .register_uri_scheme_protocol("bare", |_, _| {
            tauri::http::Response::builder()
                .header("Content-Type", "text/html")
                .body(PAGE.as_bytes().to_vec())
                .expect("a static response")
        })
        .setup(|app| {
            let url = tauri::WebviewUrl::External("bare://localhost/".parse()?);
            tauri::WebviewWindowBuilder::new(app, "main", url)
                .title("Bare")
                .inner_size(1100.0, 720.0)
                .build()?;
            Ok(())
        })
        .run(context)
        .expect("the Tauri runtime failed to start");
}
