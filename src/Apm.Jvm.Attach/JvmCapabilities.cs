using System.Buffers.Binary;
using System.Text;

namespace Apm.Jvm.Attach;

/// <summary>
/// Reads the one hsperfdata counter that says whether a JVM accepts attach (sun.rt.jvmCapabilities, whose
/// first character is '1' when the attach mechanism is enabled) — the same test the JDK's attach API makes.
/// Only the entry table is walked; every offset is bounds-checked because the file belongs to the target.
/// </summary>
internal static class JvmCapabilities
{
    private const int MaxFileBytes = 1 << 20;
    private const int HeaderBytes = 32;
    private const int EntryHeaderBytes = 20;
    private static readonly byte[] CapabilitiesName = Encoding.ASCII.GetBytes("sun.rt.jvmCapabilities");

    /// <summary>Finds &lt;tmp&gt;/hsperfdata_*/&lt;nspid&gt; and returns whether attach is supported, or null when unknown.</summary>
    public static bool? TryReadAttachSupported(string tmpDir, int namespacePid)
    {
        try
        {
            foreach (var dir in Directory.EnumerateDirectories(tmpDir, "hsperfdata_*"))
            {
                var file = Path.Combine(dir, namespacePid.ToString(System.Globalization.CultureInfo.InvariantCulture));
                if (!File.Exists(file)) continue;
                var length = new FileInfo(file).Length;
                if (length is < HeaderBytes or > MaxFileBytes) continue;
                var data = NativeMethods.ReadFileUnlocked(file, (int)length);
                if (data is null) continue;
                var result = TryParseAttachSupported(data);
                if (result.HasValue) return result;
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Unknown is a valid answer: the caller falls back to the command line.
        }

        return null;
    }

    /// <summary>Parses an hsperfdata image; null when the image is not one or lacks the counter.</summary>
    internal static bool? TryParseAttachSupported(ReadOnlySpan<byte> data)
    {
        if (data.Length < HeaderBytes || BinaryPrimitives.ReadUInt32BigEndian(data) != 0xCAFEC0C0) return null;
        var little = data[4] == 1;
        int Int(ReadOnlySpan<byte> d, int at) => little ? BinaryPrimitives.ReadInt32LittleEndian(d[at..]) : BinaryPrimitives.ReadInt32BigEndian(d[at..]);
        var offset = Int(data, 24);
        var count = Int(data, 28);
        for (var i = 0; i < count && offset >= HeaderBytes && offset <= data.Length - EntryHeaderBytes; i++)
        {
            var entryLength = Int(data, offset);
            var nameOffset = Int(data, offset + 4);
            var dataOffset = Int(data, offset + 16);
            if (entryLength < EntryHeaderBytes || entryLength > data.Length - offset) return null;
            var entry = data.Slice(offset, entryLength);
            if (nameOffset >= 0 && nameOffset + CapabilitiesName.Length < entry.Length
                && entry.Slice(nameOffset, CapabilitiesName.Length).SequenceEqual(CapabilitiesName)
                && entry[nameOffset + CapabilitiesName.Length] == 0)
            {
                return dataOffset >= 0 && dataOffset < entry.Length ? entry[dataOffset] == (byte)'1' : null;
            }

            offset += entryLength;
        }

        return null;
    }
}
