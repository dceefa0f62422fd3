function hello() {
  return "hello from the shop";
}
