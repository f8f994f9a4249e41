import Foundation

/// A deployments file (`--deployments FILE`): logical model names mapped to their deployments.
///
///     {"models": {"fast": [
///        {"name": "east", "provider": "openai", "base_url": "https://…/v1", "model": "gpt-4o-mini",
///         "api_key_env": "KEY_EAST", "weight": 2, "rpm": 5000, "tpm": 2000000, "max_concurrency": 128},
///        {"name": "claude", "provider": "anthropic", "model": "claude-haiku-4-5", "api_key_env": "ANTHROPIC_API_KEY"}]},
///      "breaker": {"failures": 3, "cooldown_ms": 5000, "max_cooldown_ms": 300000}}
///
/// Parsing is strict like the model catalog's (`CatalogFile`, whose readers it shares): an
/// unknown key, a wrong type, a duplicate key or deployment name, a model without deployments,
/// a key variable that is not set, a URL that is not http(s) is a problem naming where it is.
package enum DeploymentsFile {
    package typealias Problem = CatalogFile.Problem

    static let deploymentKeys: Set<String> = ["name", "provider", "base_url", "model", "api_key_env", "weight", "rpm", "tpm", "max_concurrency"]

    /// Reads and checks `path`; key variables are looked up in `environment`.
    public static func load(_ path: String, environment: [String: String] = ProcessInfo.processInfo.environment) -> Result<RouterConfiguration, Problem> {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            return .failure(Problem(path: "", message: "cannot open \(path): \(String(cString: strerror(errno)))"))
        }
        defer { try? handle.close() }
        let data: Data
        do {
            data = try handle.read(upToCount: CatalogFile.maxBytes + 1) ?? Data()
        } catch {
            return .failure(Problem(path: "", message: "cannot read \(path): \(error.localizedDescription)"))
        }
        guard data.count <= CatalogFile.maxBytes else { return .failure(Problem(path: "", message: "\(path) is larger than 16 MiB")) }
        return parse(Array(data), environment: environment)
    }

    public static func parse(_ bytes: [UInt8], environment: [String: String] = ProcessInfo.processInfo.environment) -> Result<RouterConfiguration, Problem> {
        let root: JSONValue
        do {
            root = try JSONParser.parse(bytes, options: .strict)
        } catch {
            return .failure(Problem(path: error.path ?? "", message: "not valid JSON: \(error.message) at byte \(error.offset)"))
        }
        do throws(Problem) {
            let top = try CatalogFile.object(root, at: "")
            try CatalogFile.onlyKeys(top, ["models", "breaker"], at: "")
            guard let modelsValue = top["models"] else {
                throw Problem(path: "", message: "a deployments file is an object with \"models\": {logical name: [deployments]}")
            }
            let modelsObject = try CatalogFile.object(modelsValue, at: "models")
            var models: [String: [Deployment]] = [:]
            for name in modelsObject.keys.sorted() {
                let path = "models.\(name)"
                guard !name.isEmpty, name.utf8.count <= 256 else { throw Problem(path: path, message: "a model name has 1 to 256 bytes") }
                guard case .array(let items) = modelsObject[name]! else {
                    throw Problem(path: path, message: "expected a list of deployments, got \(CatalogFile.describe(modelsObject[name]!))")
                }
                models[name] = try items.enumerated().map { (i, item) throws(Problem) in try deployment(item, at: "\(path)[\(i)]", environment: environment) }
            }
            var configuration = RouterConfiguration(models: models)
            if let breaker = top["breaker"] { configuration.breaker = try breakerSettings(breaker) }
            if let problem = configuration.problem { throw problem }
            return .success(configuration)
        } catch {
            return .failure(error)
        }
    }

    private static func deployment(_ value: JSONValue, at path: String, environment: [String: String]) throws(Problem) -> Deployment {
        let fields = try CatalogFile.object(value, at: path)
        try CatalogFile.onlyKeys(fields, deploymentKeys, at: path)
        for required in ["name", "provider", "model"] where fields[required] == nil {
            throw Problem(path: path, message: "a deployment needs \"\(required)\"")
        }
        var d = Deployment(
            name: try CatalogFile.string(fields["name"]!, at: path + ".name"), provider: try CatalogFile.string(fields["provider"]!, at: path + ".provider"),
            model: try CatalogFile.string(fields["model"]!, at: path + ".model"))
        if d.model.isEmpty { throw Problem(path: path + ".model", message: "the provider's model name is empty") }
        if let v = fields["base_url"] {
            let text = try CatalogFile.string(v, at: path + ".base_url")
            guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme), let host = url.host, !host.isEmpty
            else { throw Problem(path: path + ".base_url", message: "\(text.contains("@") ? "the URL" : "\"\(text.prefix(200))\"") is not an http(s) URL; e.g. https://api.openai.com/v1") }
            guard url.user == nil, url.password == nil else {
                throw Problem(path: path + ".base_url", message: "no user:password@ in a URL: name the key's variable in \"api_key_env\"")
            }
            d.baseURL = text
        }
        if let v = fields["api_key_env"] {
            let variable = try CatalogFile.string(v, at: path + ".api_key_env")
            // Not echoed: a key pasted here instead of its variable's name would be printed.
            guard isVariableName(variable) else {
                throw Problem(
                    path: path + ".api_key_env",
                    message: "not an environment variable name (letters, digits and _, not starting with a digit, 1 to 128 bytes): give the name of the variable that holds the key, never the key itself")
            }
            guard let key = environment[variable], !key.isEmpty else {
                throw Problem(path: path + ".api_key_env", message: "$\(variable) is not set: export it, or name the variable that holds this deployment's key")
            }
            d.apiKeyVariable = variable
        }
        if let v = fields["weight"] { d.weight = try CatalogFile.integer(v, in: Deployment.weightRange, at: path + ".weight") }
        if let v = fields["rpm"] { d.requestsPerMinute = try CatalogFile.integer(v, in: Deployment.rpmRange, at: path + ".rpm") }
        if let v = fields["tpm"] { d.tokensPerMinute = try CatalogFile.integer(v, in: Deployment.tpmRange, at: path + ".tpm") }
        if let v = fields["max_concurrency"] { d.maxConcurrency = try CatalogFile.integer(v, in: Deployment.concurrencyRange, at: path + ".max_concurrency") }
        return d
    }

    /// `[A-Za-z_][A-Za-z0-9_]*`, 1 to 128 bytes: what `api_key_env` may hold.
    static func isVariableName(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard let first = bytes.first, bytes.count <= 128 else { return false }
        func letter(_ b: UInt8) -> Bool { (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || b == 95 }
        return letter(first) && bytes.allSatisfy { letter($0) || ($0 >= 48 && $0 <= 57) }
    }

    private static func breakerSettings(_ value: JSONValue) throws(Problem) -> BreakerSettings {
        let fields = try CatalogFile.object(value, at: "breaker")
        try CatalogFile.onlyKeys(fields, ["failures", "cooldown_ms", "max_cooldown_ms"], at: "breaker")
        var settings = BreakerSettings()
        if let v = fields["failures"] { settings.failureThreshold = try CatalogFile.integer(v, in: BreakerSettings.thresholdRange, at: "breaker.failures") }
        if let v = fields["cooldown_ms"] {
            settings.cooldown = .milliseconds(try CatalogFile.integer(v, in: BreakerSettings.cooldownRange, at: "breaker.cooldown_ms"))
            if fields["max_cooldown_ms"] == nil { settings.maxCooldown = max(settings.maxCooldown, settings.cooldown) }
        }
        if let v = fields["max_cooldown_ms"] {
            settings.maxCooldown = .milliseconds(try CatalogFile.integer(v, in: BreakerSettings.cooldownRange, at: "breaker.max_cooldown_ms"))
        }
        return settings
    }
}
