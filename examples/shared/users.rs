//! The load generators' user names, shared by path so that `loadgen` and `scale` (and
//! `scripts/wrk/hello.lua`, which writes the same rule in Lua) name the same users.

/// The i-th user's name: `load` and i in base 26, least significant letter first. Letters
/// only, as the API requires, and one name per i, so users i >= N are never among N seeded
/// ones.
pub fn user_name(i: usize) -> String {
    let mut name = String::from("load");
    let mut n = i;
    loop {
        name.push(char::from(b'a' + (n % 26) as u8));
        n /= 26;
        if n == 0 {
            return name;
        }
    }
}
