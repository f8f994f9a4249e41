/// Phantom types that switch one optional capability of a generic adapter on or off.
///
/// An adapter type such as `MockAdapter<Uploads, Caching, …>` conforms to
/// `UploadsCapability` only `where Uploads == CapabilityOn`, so a user's choice of
/// capabilities becomes the adapter's real conformances, and probing with `as?` sees
/// exactly that choice — there is no flag that could disagree with a conformance.
public protocol CapabilityFlag: Sendable {}
public enum CapabilityOn: CapabilityFlag {}
public enum CapabilityOff: CapabilityFlag {}
