//! Build script: only the desktop build needs Tauri's code generation (icons, config, ACL).
fn main() {
    #[cfg(feature = "desktop")]
    tauri_build::build();
}
