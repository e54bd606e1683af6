using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Apm.Deployment.Tests;

/// <summary>
/// docker-compose.yml as parsed by a real YAML parser (Debian's python3-yaml, which resolves anchors and merge keys as
/// Compose does), with helpers to read services. Variable references such as <c>${X:-default}</c> are kept as text.
/// </summary>
internal sealed partial class ComposeFile
{
    private ComposeFile(JsonElement root) => Root = root;

    public JsonElement Root { get; }

    public JsonElement Services => Root.GetProperty("services");

    public static string RepoRoot { get; } = FindRepoRoot();

    public static ComposeFile Load()
    {
        var path = Path.Combine(RepoRoot, "docker-compose.yml");
        var psi = new ProcessStartInfo("/usr/bin/python3")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1], encoding='utf-8')), sys.stdout)");
        psi.ArgumentList.Add(path);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("could not start /usr/bin/python3");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"docker-compose.yml did not parse (python3-yaml needed: apt-get install python3-yaml): {stderr}");
        return new ComposeFile(JsonDocument.Parse(stdout.Result).RootElement.Clone());
    }

    public JsonElement Service(string name) =>
        Services.TryGetProperty(name, out var s) ? s : throw new Xunit.Sdk.XunitException($"docker-compose.yml has no service '{name}'");

    public static IReadOnlyDictionary<string, string> Environment(JsonElement service)
    {
        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        if (!service.TryGetProperty("environment", out var e)) return env;
        if (e.ValueKind == JsonValueKind.Object)
        {
            foreach (var p in e.EnumerateObject()) env[p.Name] = p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString()! : p.Value.GetRawText();
        }
        else
        {
            foreach (var item in e.EnumerateArray())
            {
                var text = item.GetString()!;
                var eq = text.IndexOf('=', StringComparison.Ordinal);
                env[eq < 0 ? text : text[..eq]] = eq < 0 ? "" : text[(eq + 1)..];
            }
        }

        return env;
    }

    public static IReadOnlyList<string> Strings(JsonElement service, string property) =>
        !service.TryGetProperty(property, out var v) ? []
        : v.ValueKind == JsonValueKind.Array ? v.EnumerateArray().Select(x => x.GetString()!).ToList()
        : [v.GetString()!];

    /// <summary>depends_on as names, whether written as a list or as a map with conditions.</summary>
    public static IReadOnlyDictionary<string, string> DependsOn(JsonElement service)
    {
        if (!service.TryGetProperty("depends_on", out var d)) return new Dictionary<string, string>();
        return d.ValueKind == JsonValueKind.Array
            ? d.EnumerateArray().ToDictionary(x => x.GetString()!, _ => "service_started")
            : d.EnumerateObject().ToDictionary(x => x.Name, x => x.Value.TryGetProperty("condition", out var c) ? c.GetString()! : "service_started");
    }

    /// <summary>Volume mounts as (source, target) in short syntax.</summary>
    public static IReadOnlyList<(string Source, string Target)> Volumes(JsonElement service) =>
        Strings(service, "volumes").Select(v =>
        {
            var parts = v.Split(':');
            return (parts[0], parts[1]);
        }).ToList();

    /// <summary>The value of a compose variable reference's default (<c>${X:-d}</c> gives d), else the text itself.</summary>
    public static string Resolve(string value)
    {
        var m = VariablePattern().Match(value);
        return m.Success ? m.Groups["default"].Value : value;
    }

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Apm.sln"))) return dir.FullName;
        }

        throw new InvalidOperationException("Apm.sln not found above " + AppContext.BaseDirectory);
    }

    [GeneratedRegex(@"^\$\{(?<name>[A-Za-z_][A-Za-z0-9_]*)(:-(?<default>[^}]*))?(:\?[^}]*)?\}$")]
    private static partial Regex VariablePattern();
}
