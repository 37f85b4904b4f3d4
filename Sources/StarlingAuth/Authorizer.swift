// Authorizer: who may publish and subscribe (SPEC §7). Built out in issue #6.
import StarlingCore

/// What a request wants to do.
public enum AuthAction: Sendable { case publish, subscribe }
