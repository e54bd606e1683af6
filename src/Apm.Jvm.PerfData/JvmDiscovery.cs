using System.Globalization;

namespace Apm.Jvm.PerfData;

/// <summary>A local HotSpot JVM that publishes counters.</summary>
/// <param name="Pid">Process id in our pid namespace (the one to signal and to look up in /proc).</param>
/// <param name="NsPid">Process id inside the JVM's own pid namespace (names its hsperfdata file); equals Pid outside containers.</param>
/// <param name="PerfDataPath">The hsperfdata file, through /proc/&lt;pid&gt;/root for a JVM in a container.</param>
/// <param name="User">The user of the hsperfdata_&lt;user&gt; directory.</param>
/// <param name="ContainerRoot">/proc/&lt;pid&gt;/root for a JVM in another pid namespace; null on the host.</param>
public sealed record DiscoveredJvm(int Pid, int NsPid, string PerfDataPath, string User, string? ContainerRoot);

/// <summary>A place discovery could not look into, and why (for a counter and a log line, not an error).</summary>
/// <param name="Path">The directory or process that was skipped.</param>
/// <param name="Reason">For example "permission denied".</param>
public sealed record DiscoverySkip(string Path, string Reason);

/// <summary>
/// Lists local HotSpot JVMs from their hsperfdata files: <c>&lt;tmp&gt;/hsperfdata_&lt;user&gt;/&lt;pid&gt;</c> whose
/// pid is alive, and, for processes in another pid namespace (containers),
/// <c>/proc/&lt;pid&gt;/root/tmp/hsperfdata_&lt;user&gt;/&lt;nspid&gt;</c> with nspid the last NStgid value.
/// Cost per call: one directory listing per hsperfdata directory, one readlink per process, and for processes in
/// foreign namespaces one listing per namespace plus one status read per process of a namespace that has
/// hsperfdata files: cheap enough for every second. Not thread-safe.
/// </summary>
public sealed class JvmDiscovery
{
    private readonly string _tmpRoot;
    private readonly string _procRoot;
    private readonly bool _scanContainers;
    private List<DiscoverySkip> _lastSkipped = [];

    /// <summary>Creates a discovery over the given roots (tests point them at temp directories).</summary>
    /// <param name="tmpRoot">Where hsperfdata_* directories of host JVMs live; "/tmp" normally.</param>
    /// <param name="procRoot">The proc filesystem; "/proc" normally.</param>
    /// <param name="scanContainers">Also look for JVMs in other pid namespaces through /proc/&lt;pid&gt;/root.</param>
    public JvmDiscovery(string tmpRoot = "/tmp", string procRoot = "/proc", bool scanContainers = true)
    {
        ArgumentException.ThrowIfNullOrEmpty(tmpRoot);
        ArgumentException.ThrowIfNullOrEmpty(procRoot);
        _tmpRoot = tmpRoot;
        _procRoot = procRoot;
        _scanContainers = scanContainers;
    }

    /// <summary>Places skipped by the last <see cref="Discover"/> call (unreadable directories and processes).</summary>
    public IReadOnlyList<DiscoverySkip> LastSkipped => _lastSkipped;

    /// <summary>Skips summed over every call, for a counter.</summary>
    public long SkippedTotal { get; private set; }

    /// <summary>Lists the JVMs that are alive now, host ones first, each once.</summary>
    public IReadOnlyList<DiscoveredJvm> Discover()
    {
        var skipped = new List<DiscoverySkip>();
        var result = new List<DiscoveredJvm>();
        var seenPids = new HashSet<int>();
        foreach (var (user, file, nsPid) in PerfDataFiles(_tmpRoot, skipped))
        {
            if (!Directory.Exists(ProcPath(nsPid))) continue; // a stale file left by a JVM that was killed
            if (seenPids.Add(nsPid)) result.Add(new DiscoveredJvm(nsPid, nsPid, file, user, null));
        }

        if (_scanContainers) DiscoverContainers(result, seenPids, skipped);
        _lastSkipped = skipped;
        SkippedTotal += skipped.Count;
        return result;
    }

    private void DiscoverContainers(List<DiscoveredJvm> result, HashSet<int> seenPids, List<DiscoverySkip> skipped)
    {
        var ourNamespace = ReadLink(Path.Combine(_procRoot, "self", "ns", "pid"));
        if (ourNamespace is null) return; // no namespaces to compare (not Linux, or a restricted /proc)
        IEnumerable<string> procDirs;
        try
        {
            procDirs = Directory.EnumerateDirectories(_procRoot).ToList();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            skipped.Add(new DiscoverySkip(_procRoot, Reason(ex)));
            return;
        }

        // Files per foreign namespace, listed once through the first process seen in it: nspid -> (user, path, root).
        var byNamespace = new Dictionary<string, Dictionary<int, (string User, string Path, string Root)>>(StringComparer.Ordinal);
        foreach (var dir in procDirs)
        {
            if (!TryParsePid(Path.GetFileName(dir), out var pid) || seenPids.Contains(pid)) continue;
            var ns = ReadLink(Path.Combine(dir, "ns", "pid"));
            if (ns is null || ns == ourNamespace) continue;
            if (!byNamespace.TryGetValue(ns, out var files))
            {
                files = [];
                var root = Path.Combine(dir, "root");
                foreach (var (user, file, nsPid) in PerfDataFiles(Path.Combine(root, "tmp"), skipped))
                {
                    files.TryAdd(nsPid, (user, file, root));
                }

                byNamespace[ns] = files;
            }

            if (files.Count == 0) continue;
            var nspid = ReadNsPid(dir, skipped);
            if (nspid is null || !files.TryGetValue(nspid.Value, out var hit)) continue;
            // Present the path through this process's own root: it stays valid as long as the JVM lives.
            var own = Path.Combine(dir, "root", Path.GetRelativePath(hit.Root, hit.Path));
            seenPids.Add(pid);
            result.Add(new DiscoveredJvm(pid, nspid.Value, own, hit.User, Path.Combine(dir, "root")));
        }
    }

    /// <summary>(user, path, pid) for every file named by a number in <paramref name="tmp"/>/hsperfdata_*/.</summary>
    private static List<(string User, string Path, int Pid)> PerfDataFiles(string tmp, List<DiscoverySkip> skipped)
    {
        var found = new List<(string, string, int)>();
        string[] dirs;
        try
        {
            if (!Directory.Exists(tmp)) return found;
            dirs = Directory.GetDirectories(tmp, "hsperfdata_*");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            skipped.Add(new DiscoverySkip(tmp, Reason(ex)));
            return found;
        }

        foreach (var dir in dirs)
        {
            var user = Path.GetFileName(dir)["hsperfdata_".Length..];
            try
            {
                foreach (var file in Directory.EnumerateFiles(dir))
                {
                    if (TryParsePid(Path.GetFileName(file), out var pid)) found.Add((user, file, pid));
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                skipped.Add(new DiscoverySkip(dir, Reason(ex)));
            }
        }

        return found;
    }

    /// <summary>The last NStgid value of /proc/&lt;pid&gt;/status: the pid inside the innermost namespace.</summary>
    private static int? ReadNsPid(string procDir, List<DiscoverySkip> skipped)
    {
        try
        {
            foreach (var line in File.ReadLines(Path.Combine(procDir, "status")))
            {
                if (!line.StartsWith("NStgid:", StringComparison.Ordinal)) continue;
                var parts = line["NStgid:".Length..].Split((char[])['\t', ' '], StringSplitOptions.RemoveEmptyEntries);
                return parts.Length > 0 && TryParsePid(parts[^1], out var nspid) ? nspid : null;
            }

            return null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // The process may have exited between the listing and now: only a permission problem is worth a skip.
            if (ex is UnauthorizedAccessException) skipped.Add(new DiscoverySkip(procDir, Reason(ex)));
            return null;
        }
    }

    private static string? ReadLink(string path)
    {
        try
        {
            return new FileInfo(path).LinkTarget;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private string ProcPath(int pid) => Path.Combine(_procRoot, pid.ToString(CultureInfo.InvariantCulture));

    private static bool TryParsePid(string name, out int pid) =>
        int.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out pid) && pid > 0;

    private static string Reason(Exception ex) => ex is UnauthorizedAccessException ? "permission denied" : ex.Message;
}
