namespace Apm.Jvm.PerfData.Tests;

/// <summary>A fresh directory under the system temp dir, deleted on dispose.</summary>
internal sealed class TempDir : IDisposable
{
    public TempDir()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "apm-perfdata-test-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string File(string name, byte[] content)
    {
        var path = System.IO.Path.Combine(Path, name);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(path)!);
        System.IO.File.WriteAllBytes(path, content);
        return path;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>Open file descriptors and memory mappings of this process that point into one directory.</summary>
internal static class ProcessResources
{
    public static int OpenFilesUnder(string dir)
    {
        var count = 0;
        foreach (var fd in Directory.EnumerateFileSystemEntries("/proc/self/fd"))
        {
            try
            {
                var target = new FileInfo(fd).LinkTarget;
                if (target != null && target.StartsWith(dir, StringComparison.Ordinal)) count++;
            }
            catch (IOException)
            {
                // The descriptor closed while we listed.
            }
        }

        return count;
    }

    public static int MappingsUnder(string dir) =>
        System.IO.File.ReadAllLines("/proc/self/maps").Count(l => l.Contains(dir, StringComparison.Ordinal));
}
