import java.util.ArrayList;
import java.util.List;

// The demo JVM of `apm up --demo`: a service with a steady allocation rate, a slowly growing cache
// (old generation creeps up) and regular young collections, so every chart has something to show.
public class DemoService {
    static final List<byte[]> cache = new ArrayList<>();
    static volatile Object sink;

    public static void main(String[] args) throws Exception {
        System.out.println("DemoService running");
        long i = 0;
        while (true) {
            sink = new byte[32 * 1024];
            if (++i % 200 == 0) {
                cache.add(new byte[8 * 1024]);
                if (cache.size() > 12_000) cache.subList(0, 6_000).clear();
            }
            if (i % 500 == 0) Thread.sleep(10);
        }
    }
}
