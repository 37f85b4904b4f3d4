// The version `starling --version` prints and `starling_build_info` carries.

public enum StarlingVersion {
    public static let current = "0.9.0"
}
