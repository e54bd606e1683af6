using System.Globalization;

namespace Apm.Reports;

/// <summary>
/// A memory cgroup for one child process, so the kernel caps the child's whole memory (anonymous memory; the page
/// cache of a memory-mapped file is reclaimed first), not only its managed heap. It is created as a child of this
/// process's own memory cgroup, so this process's own limits still apply: with cgroup v2 when the memory controller is
/// available for our cgroup's children, else in the cgroup v1 memory hierarchy. Needs write access there (root, or a
/// delegated cgroup); <see cref="TryCreate"/> says why it cannot otherwise. Linux only.
/// </summary>
internal sealed class MemoryCgroup : IDisposable
{
    private readonly string _dir;
    private readonly bool _v2;

    private MemoryCgroup(string dir, bool v2)
    {
        _dir = dir;
        _v2 = v2;
    }

    /// <summary>The cgroup's directory.</summary>
    public string Directory => _dir;

    /// <summary>A new cgroup limited to <paramref name="limitBytes"/>, or null with the reason in <paramref name="whyNot"/>.</summary>
    public static MemoryCgroup? TryCreate(long limitBytes, out string whyNot)
    {
        if (!OperatingSystem.IsLinux())
        {
            whyNot = "memory cgroups exist on Linux only";
            return null;
        }

        string[] cgroups, mounts;
        try
        {
            cgroups = File.ReadAllLines("/proc/self/cgroup");
            mounts = File.ReadAllLines("/proc/self/mountinfo");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            whyNot = "cannot read /proc/self/cgroup or /proc/self/mountinfo: " + ex.Message;
            return null;
        }

        var name = "apm-triage-" + Guid.NewGuid().ToString("N")[..12];
        var reasons = new List<string>();
        // cgroup v2: our cgroup must offer the memory controller to its children.
        if (OwnDirectory(cgroups, mounts, v2: true) is { } v2Dir)
        {
            var subtree = Read(Path.Combine(v2Dir, "cgroup.subtree_control"));
            if (!HasWord(subtree, "memory") && !TryWrite(Path.Combine(v2Dir, "cgroup.subtree_control"), "+memory", out var error))
            {
                reasons.Add($"cgroup v2: the memory controller is not enabled for the children of {v2Dir} ({error})");
            }
            else if (TryMake(Path.Combine(v2Dir, name), v2: true, limitBytes, out var group, out var makeError))
            {
                whyNot = "";
                return group;
            }
            else
            {
                reasons.Add("cgroup v2: " + makeError);
            }
        }
        else
        {
            reasons.Add("no cgroup v2 hierarchy with this process's cgroup in view");
        }

        if (OwnDirectory(cgroups, mounts, v2: false) is { } v1Dir)
        {
            if (TryMake(Path.Combine(v1Dir, name), v2: false, limitBytes, out var group, out var makeError))
            {
                whyNot = "";
                return group;
            }

            reasons.Add("cgroup v1: " + makeError);
        }
        else
        {
            reasons.Add("no cgroup v1 memory hierarchy with this process's cgroup in view");
        }

        whyNot = string.Join("; ", reasons);
        return null;
    }

    /// <summary>Moves process <paramref name="pid"/> into the cgroup; false with the reason when the kernel refused.</summary>
    public bool TryAdd(int pid, out string whyNot) =>
        TryWrite(Path.Combine(_dir, "cgroup.procs"), pid.ToString(CultureInfo.InvariantCulture), out whyNot);

    /// <summary>Whether the kernel's out-of-memory killer killed a process of this cgroup (its <c>oom_kill</c> count).</summary>
    public bool OomKilled
    {
        get
        {
            var text = Read(Path.Combine(_dir, _v2 ? "memory.events" : "memory.oom_control")) ?? "";
            foreach (var line in text.Split('\n'))
            {
                var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (parts.Length == 2 && parts[0] == "oom_kill" && long.TryParse(parts[1], CultureInfo.InvariantCulture, out var n)) return n > 0;
            }

            return false;
        }
    }

    /// <summary>Removes the cgroup (its processes have exited); a cgroup that cannot be removed is left empty.</summary>
    public void Dispose()
    {
        for (var attempt = 0; attempt < 20; attempt++)
        {
            try
            {
                // rmdir(2): a cgroup directory is removed empty-handed, its control files go with it.
                System.IO.Directory.Delete(_dir, recursive: false);
                return;
            }
            catch (DirectoryNotFoundException)
            {
                return;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // EBUSY until the kernel has released the exited child.
                Thread.Sleep(50);
            }
        }
    }

    private static bool TryMake(string dir, bool v2, long limitBytes, out MemoryCgroup? group, out string error)
    {
        group = null;
        try
        {
            System.IO.Directory.CreateDirectory(dir);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            error = $"cannot create {dir}: {ex.Message}";
            return false;
        }

        var made = new MemoryCgroup(dir, v2);
        var limit = limitBytes.ToString(CultureInfo.InvariantCulture);
        if (!TryWrite(Path.Combine(dir, v2 ? "memory.max" : "memory.limit_in_bytes"), limit, out error))
        {
            made.Dispose();
            return false;
        }

        // No swap either, where the kernel accounts it (a child over its cap dies instead of swapping the host).
        if (v2) TryWrite(Path.Combine(dir, "memory.swap.max"), "0", out _);
        else TryWrite(Path.Combine(dir, "memory.memsw.limit_in_bytes"), limit, out _);
        group = made;
        error = "";
        return true;
    }

    /// <summary>
    /// This process's cgroup directory in the v2 hierarchy, or in the v1 memory hierarchy, as mounted here; null when
    /// neither is in view.
    /// </summary>
    private static string? OwnDirectory(string[] cgroups, string[] mounts, bool v2)
    {
        // /proc/self/cgroup: "0::/path" (v2), "4:memory:/path" (v1).
        string? path = null;
        foreach (var line in cgroups)
        {
            var parts = line.Split(':', 3);
            if (parts.Length != 3) continue;
            if (v2 ? parts[0] == "0" && parts[1].Length == 0 : parts[1].Split(',').Contains("memory")) path = parts[2];
        }

        if (path is null) return null;
        // /proc/self/mountinfo: "id parent major:minor root mountpoint options [tags] - fstype source superoptions".
        foreach (var line in mounts)
        {
            var dash = line.IndexOf(" - ", StringComparison.Ordinal);
            if (dash < 0) continue;
            var fields = line[..dash].Split(' ');
            var tail = line[(dash + 3)..].Split(' ');
            if (fields.Length < 5 || tail.Length < 3) continue;
            var matches = v2 ? tail[0] == "cgroup2" : tail[0] == "cgroup" && tail[2].Split(',').Contains("memory");
            if (!matches) continue;
            var root = Unescape(fields[3]);
            var mountPoint = Unescape(fields[4]);
            // The mount shows the hierarchy from `root` down; our cgroup is below it, or (a namespaced view) the mount itself.
            var relative = root == "/" ? path : path.StartsWith(root + "/", StringComparison.Ordinal) ? path[root.Length..] : path == root ? "/" : null;
            var dir = relative is null ? mountPoint : mountPoint.TrimEnd('/') + relative;
            if (!System.IO.Directory.Exists(dir)) dir = mountPoint;
            if (v2 && !HasWord(Read(Path.Combine(dir, "cgroup.controllers")), "memory")) continue;
            return dir;
        }

        return null;
    }

    private static string Unescape(string mountinfoField) =>
        mountinfoField.Replace("\\040", " ", StringComparison.Ordinal).Replace("\\011", "\t", StringComparison.Ordinal).Replace("\\134", "\\", StringComparison.Ordinal);

    private static bool HasWord(string? text, string word) =>
        text is not null && text.Split((char[])[' ', '\n'], StringSplitOptions.RemoveEmptyEntries).Contains(word);

    private static string? Read(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static bool TryWrite(string path, string value, out string error)
    {
        try
        {
            File.WriteAllText(path, value);
            error = "";
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            error = $"cannot write {path}: {ex.Message}";
            return false;
        }
    }
}
