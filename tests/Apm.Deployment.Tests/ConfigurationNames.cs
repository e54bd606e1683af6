using System.Collections;
using System.Reflection;
using System.Text.RegularExpressions;
using Apm.Aggregator;
using Apm.Aggregator.Alerting;
using Apm.Alerts.Mail;
using Apm.Collector;
using Apm.Dashboard;
using Apm.Influx;
using Apm.Kafka;
using Apm.Reports;
using Apm.Server;

namespace Apm.Deployment.Tests;

/// <summary>
/// Whether an environment variable name like <c>Apm__Kafka__BootstrapServers</c> means something to Apm: it must be
/// documented (docs/*.md) and it must bind (a settable property of the section's options class, or a key the CLI reads
/// by name: its colon form appears in src/Apm.Cli).
/// </summary>
internal static partial class ConfigurationNames
{
    private static readonly Dictionary<string, Type> Sections = new(StringComparer.OrdinalIgnoreCase)
    {
        ["Kafka"] = typeof(KafkaOptions),
        ["Influx"] = typeof(InfluxOptions),
        ["Collector"] = typeof(CollectorOptions),
        ["Aggregator"] = typeof(AggregatorOptions),
        ["Api"] = typeof(ApiOptions),
        ["Auth"] = typeof(AuthOptions),
        ["Dashboard"] = typeof(DashboardOptions),
        ["Alerts"] = typeof(AlertingOptions),
        ["Smtp"] = typeof(SmtpOptions),
        ["Reports"] = typeof(ReportStoreOptions),
    };

    private static readonly Lazy<HashSet<string>> Documented = new(ReadDocumented);
    private static readonly Lazy<string> CliSource = new(() => string.Join('\n',
        Directory.GetFiles(Path.Combine(ComposeFile.RepoRoot, "src", "Apm.Cli"), "*.cs").Select(File.ReadAllText)));

    /// <summary>Null when the name is documented and binds; otherwise why not.</summary>
    public static string? Problem(string name)
    {
        var parts = name.Split("__");
        if (parts.Length < 2 || parts[0] != "Apm") return $"{name}: not an Apm__Section__Key name";
        if (!IsDocumented(name)) return $"{name}: not documented in docs/*.md";
        return Binds(parts) ? null : $"{name}: no options property nor CLI key of that name";
    }

    private static bool IsDocumented(string name)
    {
        foreach (var key in Documented.Value)
        {
            if (key == name) return true;
            // Placeholders: Apm__Auth__Users__<name>, Apm__Kafka__Extra__<librdkafka.property>, Apm__Rules__<RuleId>__*
            var placeholder = key.IndexOfAny(['<', '*']);
            if (placeholder > 0 && name.StartsWith(key[..placeholder], StringComparison.Ordinal) && name.Length > placeholder) return true;
        }

        return false;
    }

    private static bool Binds(string[] parts)
    {
        if (CliSource.Value.Contains('"' + string.Join(':', parts) + '"', StringComparison.Ordinal)) return true;
        if (!Sections.TryGetValue(parts[1], out var type)) return false;
        for (var i = 2; i < parts.Length; i++)
        {
            var property = type.GetProperty(parts[i], BindingFlags.Public | BindingFlags.Instance | BindingFlags.IgnoreCase);
            if (property is null) return false;
            var t = property.PropertyType;
            // A dictionary or a list takes any key below it (Users__alice, Extra__session.timeout.ms, Patterns__0).
            if (t != typeof(string) && typeof(IEnumerable).IsAssignableFrom(t)) return true;
            var simple = Nullable.GetUnderlyingType(t) ?? t;
            if (simple.IsPrimitive || simple.IsEnum || simple == typeof(string) || simple == typeof(TimeSpan) || simple == typeof(Uri) || simple == typeof(decimal))
            {
                return i == parts.Length - 1 && property.SetMethod is { IsPublic: true };
            }

            type = t;
        }

        return false;
    }

    private static HashSet<string> ReadDocumented()
    {
        var keys = new HashSet<string>(StringComparer.Ordinal);
        foreach (var file in Directory.GetFiles(Path.Combine(ComposeFile.RepoRoot, "docs"), "*.md"))
        {
            string? section = null;
            foreach (var line in File.ReadLines(file))
            {
                foreach (Match m in FullName().Matches(line)) keys.Add(m.Value);
                if (line.StartsWith('#'))
                {
                    // "## Collector (`Apm__Collector__*`)": the table below lists keys of that section by short name.
                    var h = SectionHeading().Match(line);
                    section = h.Success ? h.Groups[1].Value : null;
                    continue;
                }

                if (section is null || !line.StartsWith("| `", StringComparison.Ordinal)) continue;
                var firstCell = line.Split('|')[1];
                foreach (Match m in ShortName().Matches(firstCell)) keys.Add(section + "__" + m.Groups[1].Value);
            }
        }

        return keys;
    }

    [GeneratedRegex(@"Apm__[A-Za-z0-9_.<>*-]+")]
    private static partial Regex FullName();

    [GeneratedRegex(@"\(`(Apm__[A-Za-z]+)__\*`\)")]
    private static partial Regex SectionHeading();

    [GeneratedRegex(@"`([A-Za-z][A-Za-z0-9]*(?:__[A-Za-z0-9<>.]+)?)`")]
    private static partial Regex ShortName();
}
