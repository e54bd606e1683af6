using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;

namespace Apm.Reports;

/// <summary>What is known about a stored report besides its content (the list and the e-mails show it).</summary>
/// <param name="Id">32 lowercase hex digits.</param>
/// <param name="JvmId">The JVM the dump came from.</param>
/// <param name="Host">The JVM's host.</param>
/// <param name="MainClass">The JVM's main class (untrusted).</param>
/// <param name="CreatedAt">When the triage finished.</param>
/// <param name="Trigger">"rule:&lt;RuleId&gt;", "dashboard", "cli", "upload".</param>
/// <param name="AlertId">The alert that asked for the dump, if any.</param>
/// <param name="CommandId">The collector command, if any.</param>
/// <param name="TopFinding">Title of the first finding (untrusted: contains class names).</param>
/// <param name="DumpBytes">Size of the triaged dump.</param>
public sealed record ReportMeta(
    string Id,
    string JvmId,
    string Host,
    string MainClass,
    DateTimeOffset CreatedAt,
    string Trigger,
    string AlertId,
    string CommandId,
    string TopFinding,
    long DumpBytes);

/// <summary>Retention of the report store.</summary>
public sealed class ReportStoreOptions
{
    /// <summary>Most reports kept; the oldest go first.</summary>
    public int MaxReports { get; set; } = 500;

    /// <summary>Reports older than this are deleted.</summary>
    public TimeSpan MaxAge { get; set; } = TimeSpan.FromDays(30);
}

/// <summary>
/// Reports on disk: <c>&lt;dir&gt;/&lt;id&gt;/{meta.json,report.json,report.html}</c>, each report written to a temp
/// directory and renamed into place, so a reader never sees half a report. Ids are validated before they touch a path,
/// so no request can reach outside the directory. Thread-safe for one writer and many readers; listing reads every
/// meta.json (cost grows with the number of reports, bounded by <see cref="ReportStoreOptions.MaxReports"/>).
/// </summary>
public sealed partial class ReportStore
{
    private readonly ReportStoreOptions _options;
    private readonly Lock _writeLock = new();

    /// <summary>Opens (and creates) the store at <paramref name="directory"/>.</summary>
    public ReportStore(string directory, ReportStoreOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        Directory = Path.GetFullPath(directory);
        System.IO.Directory.CreateDirectory(Directory);
        _options = options ?? new ReportStoreOptions();
    }

    /// <summary>The store's root.</summary>
    public string Directory { get; }

    /// <summary>True when <paramref name="id"/> has the form of a report id (and so is safe in a path).</summary>
    public static bool IsValidId(string? id) => id is not null && IdPattern().IsMatch(id);

    /// <summary>A new report id.</summary>
    public static string NewId() => Guid.NewGuid().ToString("N");

    /// <summary>Stores a report (replacing one with the same id), then applies retention.</summary>
    public void Save(ReportMeta meta, ReadOnlySpan<byte> json, ReadOnlySpan<byte> html)
    {
        ArgumentNullException.ThrowIfNull(meta);
        if (!IsValidId(meta.Id)) throw new ArgumentException($"'{meta.Id}' is not a report id (32 lowercase hex digits).", nameof(meta));
        lock (_writeLock)
        {
            var temp = Path.Combine(Directory, ".tmp-" + Guid.NewGuid().ToString("N"));
            System.IO.Directory.CreateDirectory(temp);
            try
            {
                File.WriteAllBytes(Path.Combine(temp, "report.json"), json.ToArray());
                File.WriteAllBytes(Path.Combine(temp, "report.html"), html.ToArray());
                File.WriteAllBytes(Path.Combine(temp, "meta.json"), JsonSerializer.SerializeToUtf8Bytes(meta, ReportJsonContext.Default.ReportMeta));
                var final = Path.Combine(Directory, meta.Id);
                if (System.IO.Directory.Exists(final)) System.IO.Directory.Delete(final, recursive: true);
                System.IO.Directory.Move(temp, final);
            }
            catch
            {
                if (System.IO.Directory.Exists(temp)) System.IO.Directory.Delete(temp, recursive: true);
                throw;
            }

            ApplyRetention(DateTimeOffset.UtcNow);
        }
    }

    /// <summary>Every stored report, newest first. Unreadable entries are skipped.</summary>
    public IReadOnlyList<ReportMeta> List()
    {
        var list = new List<ReportMeta>();
        foreach (var dir in System.IO.Directory.EnumerateDirectories(Directory))
        {
            var id = Path.GetFileName(dir);
            if (IsValidId(id) && TryGet(id) is { } meta) list.Add(meta);
        }

        list.Sort((a, b) => b.CreatedAt.CompareTo(a.CreatedAt));
        return list;
    }

    /// <summary>The report's metadata, or null when there is no such (valid) report.</summary>
    public ReportMeta? TryGet(string id)
    {
        if (!IsValidId(id)) return null;
        var path = Path.Combine(Directory, id, "meta.json");
        try
        {
            return File.Exists(path) ? JsonSerializer.Deserialize(File.ReadAllBytes(path), ReportJsonContext.Default.ReportMeta) : null;
        }
        catch (Exception ex) when (ex is JsonException or IOException)
        {
            return null;
        }
    }

    /// <summary>Path of the report's JSON, or null when there is no such report.</summary>
    public string? JsonPath(string id) => ContentPath(id, "report.json");

    /// <summary>Path of the report's HTML, or null when there is no such report.</summary>
    public string? HtmlPath(string id) => ContentPath(id, "report.html");

    private string? ContentPath(string id, string name)
    {
        if (!IsValidId(id)) return null;
        var path = Path.Combine(Directory, id, name);
        return File.Exists(path) ? path : null;
    }

    private void ApplyRetention(DateTimeOffset now)
    {
        var all = List();
        for (var i = 0; i < all.Count; i++)
        {
            if (i >= _options.MaxReports || now - all[i].CreatedAt > _options.MaxAge)
            {
                System.IO.Directory.Delete(Path.Combine(Directory, all[i].Id), recursive: true);
            }
        }
    }

    [GeneratedRegex("^[0-9a-f]{32}$")]
    private static partial Regex IdPattern();
}

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(ReportMeta))]
internal sealed partial class ReportJsonContext : JsonSerializerContext;
