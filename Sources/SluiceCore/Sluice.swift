// Sluice: package-wide identity shared by every binary (version string for --version and logs).
public enum Sluice {
    /// The release this build calls itself; every binary prints it for `--version`.
    public static let version = "0.1.0-dev"
}
